using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels;

/// <summary>How per-token log-probs are computed from the model's last hidden states.</summary>
public enum LogProbMode
{
    /// <summary>log_softmax over the full vocabulary, then gather (the reference).</summary>
    [Spelling("naive")] Naive,
    /// <summary>One pass per row: online max/sum, no vocabulary-sized buffer (native kernel).</summary>
    [Spelling("fused")] Fused,
    /// <summary>Linear + log-prob chunk by chunk: the [rows, vocab] logits never exist.</summary>
    [Spelling("chunked")] Chunked,
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
    /// autograd to hidden and weight) and fp32 [N] mean logits (detached). hidden/weight: f32 or bf16 (same dtype);
    /// leading dimensions of hidden beyond [N, H] are flattened to match labels.
    /// Fused: one linear, then the fused kernel, whose backward overwrites the (private) logits with their gradient
    /// and lets them go as soon as the linear's backward has consumed it (not at the end of the caller's scope).
    /// Chunked: the chunked linear + log-prob; <paramref name="chunkRows"/> defaults to a 64 MiB logits block.
    /// <paramref name="softcap"/>: the model's logits are cap·tanh(z / cap) of the linear ones (Gemma's
    /// final_logit_softcapping); every mode applies it before the log-softmax, and the mean logits are of the capped logits.
    /// </summary>
    public static TokenLogProbResult FromHidden(Tensor hidden, Tensor weight, Tensor labels, LogProbMode mode, long? chunkRows = null, double? softcap = null)
    {
        using var scope = NewDisposeScope();
        long h = hidden.shape[^1];
        if (weight.dim() != 2 || weight.shape[1] != h)
            throw new ArgumentException($"weight must be [vocab, {h}] (got [{string.Join(", ", weight.shape)}])");
        // The head's backward returns gradients whose handles are released behind it (LogProbGradientRelease).
        var hidden2 = mode == LogProbMode.Naive ? hidden.reshape(-1, h) : LogProbGradientRelease.After(hidden.reshape(-1, h));
        var labels1 = FlatLabels(labels, hidden2.shape[0]);
        TokenLogProbResult result;
        switch (mode)
        {
            case LogProbMode.Naive:
                result = Naive(SoftCapped(nn.functional.linear(hidden2, weight), softcap), labels1);
                break;
            case LogProbMode.Fused:
            {
                // The capped logits are a fresh tensor no autograd node keeps, so the kernel may still overwrite them.
                var logits = SoftCapped(nn.functional.linear(hidden2, weight), softcap).contiguous();
                var (lp, means) = FusedLogProbFunction.Apply(logits, labels1, inPlace: true);
                result = new TokenLogProbResult(lp, means);
                break;
            }
            case LogProbMode.Chunked:
            {
                if (hidden.dtype != weight.dtype)
                    throw new ArgumentException($"hidden ({hidden.dtype}) and weight ({weight.dtype}) must have the same dtype");
                LogProbKernels.DtypeCode(weight);
                long rows = hidden2.shape[0];
                long chunk = chunkRows ?? ChunkedLinearLogProbFunction.DefaultChunkRows(rows, weight.shape[0]);
                if (chunk < 1) throw new ArgumentException("chunkRows must be at least 1");
                var (lp, means) = ChunkedLinearLogProbFunction.Apply(hidden2.contiguous(), weight.contiguous(), labels1, chunk, softcap);
                result = new TokenLogProbResult(lp, means);
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(mode));
        }
        return Reshaped(result, labels.shape);
    }

    /// <summary>
    /// log p(label) from materialised logits [..., V] (labels [...]); Fused (or Chunked, the logits existing
    /// already) runs the fused kernel without touching the caller's logits; Naive is the reference.
    /// </summary>
    public static TokenLogProbResult FromLogits(Tensor logits, Tensor labels, LogProbMode mode)
    {
        if (mode == LogProbMode.Naive) return Naive(logits, labels);
        using var scope = NewDisposeScope();
        long vocab = logits.shape[^1];
        var logits2 = logits.reshape(-1, vocab).contiguous();
        var labels1 = FlatLabels(labels, logits2.shape[0]);
        var (lp, means) = FusedLogProbFunction.Apply(logits2, labels1, inPlace: false);
        return Reshaped(new TokenLogProbResult(lp, means), labels.shape);
    }

    /// <summary>cap·tanh(z / cap), or z itself without a cap.</summary>
    public static Tensor SoftCapped(Tensor logits, double? softcap) =>
        softcap is double cap ? (logits / cap).tanh_() * cap : logits;

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

    static Tensor FlatLabels(Tensor labels, long rows)
    {
        if (labels.numel() != rows)
            throw new ArgumentException($"labels have {labels.numel()} elements for {rows} rows");
        return labels.reshape(-1).to(ScalarType.Int64).contiguous();
    }

    // Called inside the caller's dispose scope: moves the results out of it.
    static TokenLogProbResult Reshaped(TokenLogProbResult r, long[] shape) => new(
        r.LogProbs.reshape(shape).MoveToOuterDisposeScope(),
        r.LogitMeans.reshape(shape).MoveToOuterDisposeScope());
}
