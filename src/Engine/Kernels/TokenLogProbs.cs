using static TorchSharp.torch;

namespace Engine.Kernels;

/// <summary>How per-token log-probs are computed from the model's last hidden states.</summary>
public enum LogProbMode
{
    /// <summary>log_softmax over the full vocabulary, then gather (the reference).</summary>
    Naive,
    /// <summary>One pass per row: online max/sum, no vocabulary-sized buffer (native kernel).</summary>
    Fused,
    /// <summary>Linear + log-prob chunk by chunk: the [rows, vocab] logits never exist.</summary>
    Chunked,
}

/// <summary>Per-token log-probabilities of the labels, and the mean raw logit of each row (for metrics).</summary>
public readonly record struct TokenLogProbResult(Tensor LogProbs, Tensor LogitMeans) : IDisposable
{
    public void Dispose()
    {
        LogProbs.Dispose();
        LogitMeans.Dispose();
    }
}

public static class TokenLogProbs
{
    public const long IgnoreIndex = -100;

    /// <summary>
    /// log p(label) for each row of <paramref name="hidden"/> [N, H] under the head <paramref name="weight"/> [V, H].
    /// Rows whose label is <see cref="IgnoreIndex"/> give 0 and no gradient. Returns fp32 [N] log-probs (with
    /// autograd to hidden and weight) and fp32 [N] mean logits (detached).
    /// </summary>
    public static TokenLogProbResult FromHidden(Tensor hidden, Tensor weight, Tensor labels, LogProbMode mode)
    {
        // Placeholder routing until the native kernels land: every mode uses the reference path.
        using var scope = NewDisposeScope();
        var logits = nn.functional.linear(hidden, weight);
        var result = Naive(logits, labels);
        return new TokenLogProbResult(result.LogProbs.MoveToOuterDisposeScope(), result.LogitMeans.MoveToOuterDisposeScope());
    }

    /// <summary>The reference: fp32 log_softmax over the vocabulary, then gather.</summary>
    public static TokenLogProbResult Naive(Tensor logits, Tensor labels)
    {
        using var scope = NewDisposeScope();
        var valid = labels.ne(IgnoreIndex);
        var safe = labels.masked_fill(valid.logical_not(), 0);
        var logitsF = logits.to(ScalarType.Float32);
        var lp = logitsF.log_softmax(-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1);
        var logp = lp.masked_fill(valid.logical_not(), 0.0);
        Tensor means;
        using (no_grad()) means = logitsF.detach().mean(new long[] { -1 });
        return new TokenLogProbResult(logp.MoveToOuterDisposeScope(), means.MoveToOuterDisposeScope());
    }
}
