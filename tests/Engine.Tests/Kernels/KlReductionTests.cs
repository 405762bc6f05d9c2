using Engine.Kernels;
using static TorchSharp.torch;

namespace Engine.Tests.Kernels;

public class KlReductionTests
{
    static readonly float[] Policy = { -1, -2, -3, -0.5f, -0.25f, -4 };
    static readonly float[] Reference = { -1.5f, -2, -2, -1, -1, -1 };

    [Fact]
    public void HandWorkedExample()
    {
        using var scope = NewDisposeScope();
        // Row 0 sums tokens 0,1; row 1 sums tokens 0,1: policy (−3, −0.75), reference (−3.5, −2),
        // differences (0.5, 1.25), mean 0.875 = z0.
        var mask = tensor(new[] { true, true, false, true, true, false }).reshape(2, 3);
        var r = KlReduction.Compute(tensor(Policy).reshape(2, 3), tensor(Reference).reshape(2, 3), mask);
        Assert.Equal(new[] { -3f, -0.75f }, r.PolicySums.data<float>().ToArray());
        Assert.Equal(new[] { -3.5f, -2f }, r.ReferenceSums.data<float>().ToArray());
        Assert.Equal(0.875, r.MeanRaw);
        Assert.Equal(0.875, r.Z0);
    }

    [Fact]
    public void NegativeMeanIsClampedAndFloatMasksWork()
    {
        using var scope = NewDisposeScope();
        // All of row 1 included: differences (0.5, −4.75 + 3 = −1.75), mean −0.625, z0 0.
        var mask = tensor(new float[] { 1, 1, 0, 1, 1, 1 }).reshape(2, 3);
        var r = KlReduction.Compute(tensor(Policy).reshape(2, 3), tensor(Reference).reshape(2, 3), mask);
        Assert.Equal(-0.625, r.MeanRaw);
        Assert.Equal(0.0, r.Z0);
    }

    [Fact]
    public void A_nan_estimate_stays_nan_instead_of_clamping_to_zero()
    {
        // max(0, NaN) must be NaN so the trainer's non-finite guard sees it; `mean > 0 ? mean : 0` made it 0.
        using var scope = NewDisposeScope();
        var mask = tensor(new[] { true, true, false, true, true, false }).reshape(2, 3);
        var policy = tensor(new[] { -1, float.NaN, -3, -0.5f, -0.25f, -4 }).reshape(2, 3);
        var r = KlReduction.Compute(policy, tensor(Reference).reshape(2, 3), mask);
        Assert.True(double.IsNaN(r.MeanRaw));
        Assert.True(double.IsNaN(r.Z0));
        var viaSums = KlReduction.ComputeWithReferenceSums(tensor(Policy).reshape(2, 3), tensor(new[] { -3.5f, float.NaN }), mask);
        Assert.True(double.IsNaN(viaSums.Z0));
    }

    [Fact]
    public void ReferenceGivenAsSequenceSums()
    {
        using var scope = NewDisposeScope();
        var mask = tensor(new[] { true, true, false, true, true, false }).reshape(2, 3);
        var sums = tensor(new float[] { -3.5f, -2f });
        var viaOverload = KlReduction.ComputeWithReferenceSums(tensor(Policy).reshape(2, 3), sums, mask);
        var viaRank = KlReduction.Compute(tensor(Policy).reshape(2, 3), sums, mask);
        Assert.Equal(0.875, viaOverload.Z0);
        Assert.Equal(0.875, viaRank.MeanRaw);
        Assert.Equal(new[] { -3.5f, -2f }, viaOverload.ReferenceSums.data<float>().ToArray());
    }

    [Fact]
    public void RepeatedRunsAreBitIdenticalAndMatchADoubleReference()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var policy = randn(new long[] { 8, 333 }, generator: gen) - 2;
        var reference = randn(new long[] { 8, 333 }, generator: gen) - 2;
        var mask = rand(new long[] { 8, 333 }, generator: gen).gt(0.3);
        var a = KlReduction.Compute(policy, reference, mask);
        var b = KlReduction.Compute(policy, reference, mask);
        Assert.Equal(BitConverter.DoubleToInt64Bits(a.MeanRaw), BitConverter.DoubleToInt64Bits(b.MeanRaw));
        TensorAssert.BitEqual(a.PolicySums, b.PolicySums, "policy sums");
        var m = mask.to(ScalarType.Float64);
        double expected = ((policy.to(ScalarType.Float64) * m).sum(1) - (reference.to(ScalarType.Float64) * m).sum(1)).mean().item<double>();
        Assert.InRange(a.MeanRaw - expected, -1e-9, 1e-9);
        Assert.Equal(Math.Max(0, a.MeanRaw), a.Z0);
    }

    [Fact]
    public void NoGradientFlows()
    {
        using var scope = NewDisposeScope();
        var policy = randn(new long[] { 3, 4 }).requires_grad_(true);
        var r = KlReduction.Compute(policy, randn(new long[] { 3, 4 }), ones(new long[] { 3, 4 }));
        Assert.False(r.PolicySums.requires_grad);
    }

    [Fact]
    public void MicrobatchOfOneIsRejected()
    {
        using var scope = NewDisposeScope();
        var e = Assert.Throws<EngineException>(() => KlReduction.Compute(zeros(1, 4), zeros(1, 4), ones(1, 4)));
        Assert.Contains("at least 2", e.Message);
    }
}
