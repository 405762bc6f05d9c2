using static TorchSharp.torch;

namespace Engine.Objectives;

/// <summary>
/// What every objective is built from: per-sequence sums over the completion tokens only (prompt and padding
/// masked), each a [B] fp32 tensor.
/// </summary>
/// <param name="LogpSum">Σ log p(y_t) over completion tokens; carries autograd to the policy.</param>
/// <param name="TokenCount">Number of completion tokens (fp32, no gradient).</param>
/// <param name="LogitSum">Σ over completion tokens of the row-mean raw logit (detached). Only for the
/// <c>logits/*</c> metrics: TRL's mean over completion tokens and vocabulary is ΣLogitSum / ΣTokenCount.</param>
public sealed record SequenceScores(Tensor LogpSum, Tensor TokenCount, Tensor LogitSum)
{
    public long Length => LogpSum.shape.Length == 1 ? LogpSum.shape[0] : -1;

    /// <summary>Sums per-token values [B, T] under a completion mask [B, T] (1 = completion token).</summary>
    public static SequenceScores FromTokens(Tensor tokenLogps, Tensor completionMask, Tensor tokenLogitMeans)
    {
        using var scope = NewDisposeScope();
        var mask = completionMask.to(ScalarType.Float32);
        var logp = (tokenLogps.to(ScalarType.Float32) * mask).sum(1);
        var count = mask.sum(1).detach();
        Tensor logits;
        using (no_grad()) logits = (tokenLogitMeans.detach().to(ScalarType.Float32) * mask).sum(1);
        return new SequenceScores(logp.MoveToOuterDisposeScope(), count.MoveToOuterDisposeScope(), logits.MoveToOuterDisposeScope());
    }

    /// <summary>Checks shapes: three 1-D tensors of one length. Misuse by the caller, so ArgumentException.</summary>
    internal long Validate(string what)
    {
        foreach (var (t, name) in new[] { (LogpSum, "LogpSum"), (TokenCount, "TokenCount"), (LogitSum, "LogitSum") })
        {
            if (t.dim() != 1)
                throw new ArgumentException($"{what}.{name} must be 1-D [B], got shape [{string.Join(", ", t.shape)}]");
            if (t.shape[0] != LogpSum.shape[0])
                throw new ArgumentException($"{what}.{name} has {t.shape[0]} rows, LogpSum has {LogpSum.shape[0]}");
        }
        if (LogpSum.shape[0] == 0) throw new ArgumentException($"{what} is empty");
        return LogpSum.shape[0];
    }

    /// <summary>Checks a chosen/rejected pair of scores: each valid, both with the same number of rows.</summary>
    internal static long ValidatePair(SequenceScores chosen, SequenceScores rejected)
    {
        long n = chosen.Validate("chosen");
        if (rejected.Validate("rejected") != n) throw new ArgumentException($"chosen has {n} rows, rejected has {rejected.Length}");
        return n;
    }

    /// <summary>Per-token averaged log-probs. A completion with no tokens (truncated away) cannot be averaged.</summary>
    internal Tensor MeanLogp(string what)
    {
        var counts = TensorValues.ToDoubles(TokenCount);
        for (int i = 0; i < counts.Length; i++)
            if (!(counts[i] > 0))
                throw new EngineException($"{what} row {i} has no completion tokens (was the completion truncated away?); " +
                                          "per-token averaged objectives need at least one");
        return LogpSum / TokenCount;
    }
}
