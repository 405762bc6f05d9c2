using static TorchSharp.torch;

namespace Engine.Data;

/// <summary>
/// Prompt + completion rows as one right-padded batch, padded to its longest row. <see cref="Labels"/> holds the
/// input ids on completion tokens and −100 on prompt and padding, aligned with <see cref="InputIds"/> (Hugging
/// Face's unshifted convention: the consumer compares logits at t−1 with labels at t).
/// </summary>
public sealed class SequenceBatch : IDisposable
{
    public const long IgnoreIndex = -100;

    /// <summary>[B, T] int64.</summary>
    public Tensor InputIds { get; }
    /// <summary>[B, T] int64: token id on completion tokens, −100 elsewhere.</summary>
    public Tensor Labels { get; }
    /// <summary>[B, T] int64: 1 on real tokens, 0 on padding.</summary>
    public Tensor AttentionMask { get; }
    public int Rows { get; }
    /// <summary>Positions of the batch's rows (T).</summary>
    public int Length { get; }
    /// <summary>Completion tokens in the batch (the label positions that count).</summary>
    public long CompletionTokens { get; }
    /// <summary>Completion tokens that are predicted, i.e. not at a row's first position (the token-level loss's denominator).</summary>
    public long ScoredTokens { get; }

    SequenceBatch(Tensor inputIds, Tensor labels, Tensor attentionMask, int rows, int length, long completionTokens, long scoredTokens)
    {
        InputIds = inputIds; Labels = labels; AttentionMask = attentionMask;
        Rows = rows; Length = length; CompletionTokens = completionTokens; ScoredTokens = scoredTokens;
    }

    /// <param name="padId">Written in padding positions; they are masked, so any valid id works (the tokenizer's pad, else EOS).</param>
    public static SequenceBatch Build(IReadOnlyList<(int[] Prompt, int[] Completion)> rows, long padId, Device? device = null)
    {
        if (rows.Count == 0) throw new ArgumentException("a batch needs at least one row", nameof(rows));
        int b = rows.Count;
        int t = rows.Max(r => r.Prompt.Length + r.Completion.Length);
        var ids = new long[b * t];
        var labels = new long[b * t];
        var mask = new long[b * t];
        long completionTokens = 0, scoredTokens = 0;
        for (int r = 0; r < b; r++)
        {
            var (prompt, completion) = rows[r];
            int o = r * t, p = 0;
            foreach (int id in prompt) { ids[o + p] = id; labels[o + p] = IgnoreIndex; mask[o + p] = 1; p++; }
            foreach (int id in completion) { ids[o + p] = id; labels[o + p] = id; mask[o + p] = 1; p++; }
            for (; p < t; p++) { ids[o + p] = padId; labels[o + p] = IgnoreIndex; }
            completionTokens += completion.Length;
            scoredTokens += prompt.Length > 0 ? completion.Length : Math.Max(0, completion.Length - 1);
        }
        var shape = new long[] { b, t };
        return new SequenceBatch(
            tensor(ids, shape, ScalarType.Int64, device),
            tensor(labels, shape, ScalarType.Int64, device),
            tensor(mask, shape, ScalarType.Int64, device),
            b, t, completionTokens, scoredTokens);
    }

    public void Dispose()
    {
        InputIds.Dispose();
        Labels.Dispose();
        AttentionMask.Dispose();
    }
}
