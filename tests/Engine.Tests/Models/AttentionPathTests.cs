using Engine.Models;
using Engine.Tests.Kernels;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Tests.Models;

/// <summary>The explicit causal softmax attention that CPU bf16 uses (Attention.UsesExplicitSoftmax) against libtorch's SDPA and a float64 formula.</summary>
public class AttentionPathTests
{
    // q laid out [B, T, heads, d] and viewed as [B, heads, T, d], as the layer hands it over.
    static (Tensor Q, Tensor K, Tensor V, Tensor G) Inputs(ScalarType dtype, long b = 2, long heads = 4, long t = 37, long d = 16)
    {
        var gen = new torch.Generator(11);
        var q = randn(new[] { b, t, heads, d }, generator: gen).to(dtype).transpose(1, 2);
        var k = randn(new[] { b, heads, t, d }, generator: gen).to(dtype);
        var v = randn(new[] { b, heads, t, d }, generator: gen).to(dtype);
        var g = randn(new[] { b, heads, t, d }, generator: gen).to(dtype);
        return (q, k, v, g);
    }

    static Tensor[] ValueAndGradients(Func<Tensor, Tensor, Tensor, Tensor> attention, Tensor q0, Tensor k0, Tensor v0, Tensor g)
    {
        var q = q0.detach().requires_grad_(true);
        var k = k0.detach().requires_grad_(true);
        var v = v0.detach().requires_grad_(true);
        var o = attention(q, k, v);
        o.backward(new[] { g });
        return new[] { o.detach(), q.grad!, k.grad!, v.grad! };
    }

    [Fact]
    public void InF32ItEqualsSdpaInValuesAndGradients()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g) = Inputs(ScalarType.Float32);
        var mine = ValueAndGradients(Attention.CausalSoftmaxAttention, q, k, v, g);
        var sdpa = ValueAndGradients((a, b, c) => F.scaled_dot_product_attention(a, b, c, null, 0.0, true), q, k, v, g);
        string[] names = { "output", "dq", "dk", "dv" };
        for (int i = 0; i < 4; i++) TensorAssert.Close(mine[i], sdpa[i], 1e-5, 1e-5, names[i]);
    }

    [Fact]
    public void InBf16ItIsWithinItsRoundingOfTheFloat64Formula()
    {
        using var scope = NewDisposeScope();
        var (q, k, v, g) = Inputs(ScalarType.BFloat16);
        var mine = ValueAndGradients(Attention.CausalSoftmaxAttention, q, k, v, g);
        // softmax(q·kᵀ/√d + causal mask)·v in float64 on the same bf16 inputs, differentiated by autograd.
        Tensor Reference(Tensor a, Tensor b, Tensor c)
        {
            long t = a.shape[2];
            var scores = matmul(a, b.transpose(-2, -1)) / Math.Sqrt(a.shape[^1]);
            scores = scores.masked_fill(ones(t, t, dtype: ScalarType.Bool).triu(1), double.NegativeInfinity);
            return matmul(F.softmax(scores, -1), c);
        }
        var reference = ValueAndGradients(Reference, q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64), g.to(ScalarType.Float64));
        // The scores and the probabilities are rounded to bf16 (8 significant bits), as Hugging Face's eager attention does.
        string[] names = { "output", "dq", "dk", "dv" };
        for (int i = 0; i < 4; i++) TensorAssert.Close(mine[i].to(ScalarType.Float64), reference[i], 6e-2, 3e-2, names[i]);
    }

    [Fact]
    public void OnlyCpuBf16UpToTheLengthLimitTakesIt()
    {
        int limit = Attention.DefaultProbabilitiesMaxLength;
        Assert.True(Attention.UsesExplicitSoftmax(DeviceType.CPU, ScalarType.BFloat16, limit));
        Assert.False(Attention.UsesExplicitSoftmax(DeviceType.CPU, ScalarType.BFloat16, limit + 1));
        Assert.False(Attention.UsesExplicitSoftmax(DeviceType.CPU, ScalarType.Float32, 16));
        Assert.False(Attention.UsesExplicitSoftmax(DeviceType.CUDA, ScalarType.BFloat16, 16));
    }
}
