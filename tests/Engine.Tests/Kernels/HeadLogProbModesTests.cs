using Engine.Kernels;
using Engine.Models;
using Engine.Tests.Infrastructure;
using static TorchSharp.torch;

namespace Engine.Tests.Kernels;

/// <summary>TokenLogProbs.FromHidden: the fused and chunked heads against the naive one (values, hidden and weight gradients).</summary>
public class HeadLogProbModesTests
{
    sealed record HeadRun(Tensor LogProbs, Tensor Means, Tensor? HiddenGrad, Tensor? WeightGrad);

    static (Tensor Hidden, Tensor Weight, Tensor Labels) Inputs(long rows, long hiddenSize, long vocab, int seed)
    {
        var gen = new Generator((ulong)seed);
        var hidden = randn(new[] { rows, hiddenSize }, generator: gen);
        var weight = randn(new[] { vocab, hiddenSize }, generator: gen) * 0.5;
        var labels = randint(0, vocab, new[] { rows }, generator: gen);
        for (long r = 1; r < rows; r += 4) labels[r] = tensor(TokenLogProbs.IgnoreIndex);
        return (hidden, weight, labels);
    }

    static HeadRun Run(Tensor hidden, Tensor weight, Tensor labels, LogProbMode mode, Func<Tensor, Tensor> objective,
                       long? chunkRows = null, bool weightGrad = true, double? softcap = null)
    {
        var h = hidden.detach().clone().requires_grad_(true);
        var w = weight.detach().clone().requires_grad_(weightGrad);
        var r = TokenLogProbs.FromHidden(h, w, labels, mode, chunkRows, softcap);
        objective(r.LogProbs).backward();
        return new HeadRun(r.LogProbs.detach(), r.LogitMeans, h.grad?.clone(), weightGrad ? w.grad!.clone() : null);
    }

    static Tensor WeightedSum(Tensor lp) => (lp * arange(lp.shape[0], ScalarType.Float32).sin()).sum();

    [Theory]
    [InlineData(LogProbMode.Fused, null)]
    [InlineData(LogProbMode.Chunked, null)]
    [InlineData(LogProbMode.Chunked, 1L)]
    [InlineData(LogProbMode.Chunked, 5L)]
    [InlineData(LogProbMode.Chunked, 13L)]
    public void MatchesNaiveInFloat32(LogProbMode mode, long? chunkRows)
    {
        using var scope = NewDisposeScope();
        var (hidden, weight, labels) = Inputs(13, 24, 1001, 11);
        var naive = Run(hidden, weight, labels, LogProbMode.Naive, WeightedSum);
        var other = Run(hidden, weight, labels, mode, WeightedSum, chunkRows);
        TensorAssert.Close(other.LogProbs, naive.LogProbs, 1e-5, 1e-5, $"{mode} log-probs");
        TensorAssert.Close(other.Means, naive.Means, 1e-5, 1e-5, $"{mode} mean logits");
        TensorAssert.Close(other.HiddenGrad!, naive.HiddenGrad!, 1e-5, 1e-5, $"{mode} hidden gradient");
        TensorAssert.Close(other.WeightGrad!, naive.WeightGrad!, 1e-5, 1e-5, $"{mode} weight gradient");
        Assert.Equal(0f, other.LogProbs[1].item<float>());
    }

    [Theory]
    [InlineData(LogProbMode.Naive, null)]
    [InlineData(LogProbMode.Fused, null)]
    [InlineData(LogProbMode.Chunked, 4L)]
    public void SoftCappedLogitsMatchADoublePrecisionReference(LogProbMode mode, long? chunkRows)
    {
        // Gemma's final_logit_softcapping: log_softmax(cap·tanh(h·Wᵀ / cap)), values and gradients, against plain
        // double-precision autograd of that formula (logits large enough for the cap to bend them).
        using var scope = NewDisposeScope();
        const double cap = 3.0;
        var (hidden, weight, labels) = Inputs(13, 24, 1001, 5);
        weight = weight * 4;
        var run = Run(hidden, weight, labels, mode, WeightedSum, chunkRows, softcap: cap);

        var h = hidden.to(ScalarType.Float64).requires_grad_(true);
        var w = weight.to(ScalarType.Float64).requires_grad_(true);
        var z = (nn.functional.linear(h, w) / cap).tanh() * cap;
        var valid = labels.ne(TokenLogProbs.IgnoreIndex);
        var lp = z.log_softmax(-1).gather(-1, labels.masked_fill(valid.logical_not(), 0).unsqueeze(-1)).squeeze(-1).masked_fill(valid.logical_not(), 0.0);
        (lp * arange(lp.shape[0], ScalarType.Float64).sin()).sum().backward();
        Assert.True(z.abs().max().item<double>() > 0.9 * cap, "the logits should reach the cap");
        TensorAssert.Close(run.LogProbs, lp.detach().to(ScalarType.Float32), 1e-5, 1e-5, $"{mode} soft-capped log-probs");
        TensorAssert.Close(run.Means, z.detach().mean(new long[] { -1 }).to(ScalarType.Float32), 1e-5, 1e-5, $"{mode} soft-capped mean logits");
        TensorAssert.Close(run.HiddenGrad!, h.grad!.to(ScalarType.Float32), 1e-5, 1e-5, $"{mode} hidden gradient");
        TensorAssert.Close(run.WeightGrad!, w.grad!.to(ScalarType.Float32), 1e-5, 1e-5, $"{mode} weight gradient");
    }

    [Theory]
    [InlineData(LogProbMode.Fused)]
    [InlineData(LogProbMode.Chunked)]
    public void Bfloat16HeadMatchesNaive(LogProbMode mode)
    {
        using var scope = NewDisposeScope();
        var (hidden, weight, labels) = Inputs(10, 32, 700, 3);
        hidden = hidden.to(ScalarType.BFloat16);
        weight = weight.to(ScalarType.BFloat16);
        // The naive head in bf16 (bf16 linear, then fp32 log_softmax) is the reference the trainer would otherwise use.
        var naive = Run(hidden, weight, labels, LogProbMode.Naive, WeightedSum);
        var other = Run(hidden, weight, labels, mode, WeightedSum, chunkRows: 3);
        Assert.Equal(ScalarType.Float32, other.LogProbs.dtype);
        Assert.Equal(ScalarType.BFloat16, other.HiddenGrad!.dtype);
        Assert.Equal(ScalarType.BFloat16, other.WeightGrad!.dtype);
        TensorAssert.Close(other.LogProbs, naive.LogProbs, 1e-5, 1e-5, $"{mode} bf16 log-probs");
        // Gradients pass through bf16 matmuls (8 significant bits) in both paths; sums of ~10 terms.
        double scaleH = naive.HiddenGrad!.to(ScalarType.Float32).abs().max().item<float>();
        double scaleW = naive.WeightGrad!.to(ScalarType.Float32).abs().max().item<float>();
        TensorAssert.Close(other.HiddenGrad!.to(ScalarType.Float32), naive.HiddenGrad!.to(ScalarType.Float32), 0.02 * scaleH, 0.02, $"{mode} bf16 hidden gradient");
        TensorAssert.Close(other.WeightGrad!.to(ScalarType.Float32), naive.WeightGrad!.to(ScalarType.Float32), 0.02 * scaleW, 0.02, $"{mode} bf16 weight gradient");
    }

    [Fact]
    public void FrozenHeadGetsNoWeightGradient()
    {
        using var scope = NewDisposeScope();
        var (hidden, weight, labels) = Inputs(7, 16, 300, 5);
        var naive = Run(hidden, weight, labels, LogProbMode.Naive, WeightedSum, weightGrad: false);
        var chunked = Run(hidden, weight, labels, LogProbMode.Chunked, WeightedSum, chunkRows: 2, weightGrad: false);
        Assert.Null(chunked.WeightGrad);
        TensorAssert.Close(chunked.HiddenGrad!, naive.HiddenGrad!, 1e-5, 1e-5, "hidden gradient with a frozen head");
    }

    /// <summary>The objectives' losses built on the per-token log-probs agree across modes to 1e-5 in f32 (values and gradients).</summary>
    [Theory]
    [InlineData("dpo", LogProbMode.Fused)]
    [InlineData("dpo", LogProbMode.Chunked)]
    [InlineData("kto", LogProbMode.Fused)]
    [InlineData("kto", LogProbMode.Chunked)]
    public void ObjectiveLossesAgreeAcrossModes(string objective, LogProbMode mode)
    {
        using var scope = NewDisposeScope();
        const int batch = 4, tokens = 6;
        var (hidden, weight, labels) = Inputs(batch * tokens, 20, 512, 21);
        var reference = randn(new long[] { batch }, generator: new Generator(2)) - 10;
        Func<Tensor, Tensor> loss = objective == "dpo"
            ? lp =>
            {
                // Sequence sums, pairs (0,1), (2,3) as chosen/rejected, β = 0.1: −log σ(β·((πc − rc) − (πr − rr))).
                var seq = lp.reshape(batch, tokens).sum(1) - reference;
                var margin = seq.index(tensor(new long[] { 0, 2 })) - seq.index(tensor(new long[] { 1, 3 }));
                return -nn.functional.logsigmoid(margin * 0.1).mean();
            }
            : lp =>
            {
                // KTO with rows 0, 2 desirable and 1, 3 undesirable, z0 = 0.3 (detached), β = 0.1.
                var r = lp.reshape(batch, tokens).sum(1) - reference;
                var desirable = tensor(new float[] { 1, 0, 1, 0 });
                var d = 1 - (0.1 * (r - 0.3)).sigmoid();
                var u = 1 - (0.1 * (0.3 - r)).sigmoid();
                return (desirable * d + (1 - desirable) * u).mean();
            };
        Tensor naiveLoss = null!, otherLoss = null!;
        var naive = Run(hidden, weight, labels, LogProbMode.Naive, lp => naiveLoss = loss(lp));
        var other = Run(hidden, weight, labels, mode, lp => otherLoss = loss(lp), chunkRows: 7);
        Assert.InRange(Math.Abs(otherLoss.item<float>() - naiveLoss.item<float>()), 0, 1e-5);
        TensorAssert.Close(other.HiddenGrad!, naive.HiddenGrad!, 1e-6, 1e-5, $"{objective} {mode} hidden gradient");
        TensorAssert.Close(other.WeightGrad!, naive.WeightGrad!, 1e-6, 1e-5, $"{objective} {mode} weight gradient");
    }

    /// <summary>Real hidden states and tied head of stories260K (../shared): every mode agrees with the naive head.</summary>
    [SkippableFact]
    public void Stories260KHeadAgreesAcrossModes()
    {
        using var m = ModelLoader.Load(SharedData.Require(SharedData.Stories));
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 1, 403, 407, 261, 378, 432, 383, 286, 261, 376 }, new long[] { 1, 10 });
        var hidden = m.Model.ForwardHidden(ids, null, null, null).reshape(10, -1).detach();
        var weight = m.Model.LmHeadWeight.detach();
        var labels = cat(new[] { ids[0, TensorIndex.Slice(1)], tensor(new long[] { TokenLogProbs.IgnoreIndex }) });
        var naive = Run(hidden, weight, labels, LogProbMode.Naive, lp => lp.sum());
        foreach (var mode in new[] { LogProbMode.Fused, LogProbMode.Chunked })
        {
            var other = Run(hidden, weight, labels, mode, lp => lp.sum(), chunkRows: 4);
            TensorAssert.Close(other.LogProbs, naive.LogProbs, 1e-5, 1e-5, $"{mode} log-probs");
            TensorAssert.Close(other.HiddenGrad!, naive.HiddenGrad!, 1e-6, 1e-5, $"{mode} hidden gradient");
            TensorAssert.Close(other.WeightGrad!, naive.WeightGrad!, 1e-6, 1e-5, $"{mode} weight gradient");
        }
        // The greedy continuation is likely under the model: its per-token log-probs are far from uniform (−ln 512).
        Assert.True(naive.LogProbs[TensorIndex.Slice(0, 9)].mean().item<float>() > -3.0f);
    }
}
