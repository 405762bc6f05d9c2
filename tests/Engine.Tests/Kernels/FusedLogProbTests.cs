using Engine.Kernels;
using static TorchSharp.torch;

namespace Engine.Tests.Kernels;

/// <summary>The fused autograd function against the naive log_softmax + gather (values and gradients).</summary>
public class FusedLogProbTests
{
    static Tensor Logits(long rows, long vocab, int seed, string kind)
    {
        var gen = new Generator((ulong)seed);
        var x = randn(new[] { rows, vocab }, generator: gen) * 3;
        if (kind == "extreme")
        {
            var u = rand(new[] { rows, vocab }, generator: gen);
            x = x.masked_fill(u.lt(0.05), 1e4).masked_fill(u.gt(0.95), -1e4);
        }
        else if (kind == "neginf")
        {
            var u = rand(new[] { rows, vocab }, generator: gen);
            x = x.masked_fill(u.lt(0.3), double.NegativeInfinity);
        }
        return x;
    }

    static Tensor Labels(long rows, long vocab, int seed, Tensor? logits = null)
    {
        var labels = randint(0, vocab, new[] { rows }, generator: new Generator((ulong)seed + 1000));
        for (long r = 2; r < rows; r += 3) labels[r] = tensor(TokenLogProbs.IgnoreIndex); // every third row ignored
        if (logits is not null)
        {
            // Keep the label's own logit finite (a -inf label logit has log p = -inf in both paths, but no useful gradient).
            for (long r = 0; r < rows; r++)
            {
                long l = labels[r].item<long>();
                if (l >= 0 && float.IsNegativeInfinity(logits[r, l].item<float>())) logits[r, l] = tensor(0.5f);
            }
        }
        return labels;
    }

    /// <summary>Values, mean logits and the gradient of Σ w·logp w.r.t. the logits for both paths.</summary>
    static (Tensor Lp, Tensor Means, Tensor Grad) Run(Tensor logits, Tensor labels, Tensor weights, bool fused, bool inPlace = false)
    {
        var leaf = logits.detach().clone().requires_grad_(true);
        TokenLogProbResult r;
        if (!fused) r = TokenLogProbs.Naive(leaf, labels);
        else
        {
            var (lp, means) = FusedLogProbFunction.Apply(inPlace ? leaf * 1 : leaf, labels, inPlace);
            r = new TokenLogProbResult(lp, means);
        }
        (r.LogProbs * weights).sum().backward();
        return (r.LogProbs.detach(), r.LogitMeans, leaf.grad!.clone());
    }

    [Theory]
    [InlineData(1, 1, "normal")]
    [InlineData(1, 37, "normal")]
    [InlineData(6, 257, "normal")]
    [InlineData(5, 3001, "normal")]
    [InlineData(7, 511, "extreme")]
    [InlineData(4, 2049, "extreme")]
    [InlineData(7, 300, "neginf")]
    [InlineData(3, 4100, "neginf")]
    public void MatchesNaiveInFloat32(int rows, int vocab, string kind)
    {
        using var scope = NewDisposeScope();
        var logits = Logits(rows, vocab, rows * 31 + vocab, kind);
        var labels = Labels(rows, vocab, vocab, logits);
        var weights = randn(new long[] { rows }, generator: new Generator(7));
        var naive = Run(logits, labels, weights, fused: false);
        var fused = Run(logits, labels, weights, fused: true);
        TensorAssert.Close(fused.Lp, naive.Lp, 1e-5, 1e-5, "log-probs");
        TensorAssert.Close(fused.Means, naive.Means, 1e-4, 1e-5, "mean logits");
        TensorAssert.Close(fused.Grad, naive.Grad, 1e-6, 1e-5, "logit gradients");
        Assert.False(fused.Means.requires_grad);
        for (int r = 2; r < rows; r += 3)
        {
            Assert.Equal(0f, fused.Lp[r].item<float>());
            Assert.Equal(0.0, fused.Grad[r].abs().sum().item<float>()); // ignored rows: no gradient at all
        }
    }

    [Fact]
    public void InPlaceBackwardGivesTheSameGradient()
    {
        using var scope = NewDisposeScope();
        var logits = Logits(9, 1000, 3, "extreme");
        var labels = Labels(9, 1000, 3);
        var weights = randn(new long[] { 9 }, generator: new Generator(5));
        var separate = Run(logits, labels, weights, fused: true, inPlace: false);
        var inPlace = Run(logits, labels, weights, fused: true, inPlace: true);
        TensorAssert.BitEqual(inPlace.Grad, separate.Grad, "in-place gradient");
    }

    [Theory]
    [InlineData(5, 777)]
    [InlineData(16, 4099)]
    public void Bfloat16LogitsMatchNaiveInFloat32(int rows, int vocab)
    {
        using var scope = NewDisposeScope();
        var logits = Logits(rows, vocab, rows + vocab, "normal").to(ScalarType.BFloat16);
        var labels = Labels(rows, vocab, vocab);
        var weights = randn(new long[] { rows }, generator: new Generator(9));
        // Reference: the same bf16 values, upcast, through the naive path in fp32.
        var naive = Run(logits.to(ScalarType.Float32), labels, weights, fused: false);
        var fused = Run(logits, labels, weights, fused: true);
        Assert.Equal(ScalarType.Float32, fused.Lp.dtype);
        Assert.Equal(ScalarType.BFloat16, fused.Grad.dtype);
        // Values are computed in fp32 from exact bf16 inputs; the gradient is rounded to bf16 (8 significant bits).
        TensorAssert.Close(fused.Lp, naive.Lp, 1e-5, 1e-5, "bf16 log-probs");
        TensorAssert.Close(fused.Grad.to(ScalarType.Float32), naive.Grad, 1e-6, 1.0 / 256, "bf16 gradients");
    }

    [Fact]
    public void FromLogitsFlattensLeadingDimensionsAndLeavesLogitsIntact()
    {
        using var scope = NewDisposeScope();
        var logits = Logits(2 * 5, 300, 1, "normal").reshape(2, 5, 300);
        var labels = Labels(10, 300, 1).reshape(2, 5);
        var before = logits.clone();
        var leaf = logits.requires_grad_(true);
        var fused = TokenLogProbs.FromLogits(leaf, labels, LogProbMode.Fused);
        var naive = TokenLogProbs.FromLogits(logits.detach(), labels, LogProbMode.Naive);
        Assert.Equal(new long[] { 2, 5 }, fused.LogProbs.shape);
        TensorAssert.Close(fused.LogProbs, naive.LogProbs, 1e-5, 1e-5, "log-probs");
        fused.LogProbs.sum().backward();
        TensorAssert.BitEqual(logits.detach(), before, "caller's logits after backward");
    }

    [Fact]
    public void LabelOutsideTheVocabularyIsAClearError()
    {
        using var scope = NewDisposeScope();
        var logits = Logits(4, 50, 1, "normal");
        var labels = tensor(new long[] { 3, 50, -100, 1 });
        var e = Assert.Throws<EngineException>(() => TokenLogProbs.FromLogits(logits, labels, LogProbMode.Fused));
        Assert.Contains("label 50 at row 1", e.Message);
        labels = tensor(new long[] { 3, 1, -5, 1 });
        e = Assert.Throws<EngineException>(() => TokenLogProbs.FromLogits(logits, labels, LogProbMode.Fused));
        Assert.Contains("label -5 at row 2", e.Message);
    }

    [Fact]
    public void UnsupportedDtypeIsAClearError()
    {
        using var scope = NewDisposeScope();
        var logits = Logits(2, 10, 1, "normal").to(ScalarType.Float64);
        var e = Assert.Throws<EngineException>(() => TokenLogProbs.FromLogits(logits, tensor(new long[] { 1, 2 }), LogProbMode.Fused));
        Assert.Contains("float32 or bfloat16", e.Message);
    }
}
