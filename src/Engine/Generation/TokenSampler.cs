using static TorchSharp.torch;

namespace Engine.Generation;

/// <summary>
/// Picks the next token from fp32 logits: argmax at temperature 0, else temperature, top-k and nucleus (top-p)
/// sampling from a seeded generator so a seed reproduces a run.
/// </summary>
public sealed class TokenSampler
{
    readonly SamplingOptions _options;
    readonly Random _random;

    public TokenSampler(SamplingOptions options)
    {
        _options = options;
        _random = new Random(unchecked((int)options.Seed ^ (int)(options.Seed >> 32)));
    }

    /// <summary>logits: [B, vocab] fp32. Returns one id per row.</summary>
    public int[] Sample(Tensor logits)
    {
        long batch = logits.shape[0];
        int vocab = (int)logits.shape[1];
        if (_options.Temperature == 0)
        {
            using var arg = logits.argmax(-1);
            return arg.data<long>().Select(v => (int)v).ToArray();
        }
        using var probs = (logits / _options.Temperature).softmax(-1).to(ScalarType.Float64).contiguous();
        var all = probs.data<double>().ToArray();
        var result = new int[batch];
        for (int b = 0; b < batch; b++)
            result[b] = SampleRow(new ReadOnlySpan<double>(all, b * vocab, vocab));
        return result;
    }

    int SampleRow(ReadOnlySpan<double> probs)
    {
        var order = new int[probs.Length];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        var keys = probs.ToArray();
        // Descending by probability, ties by id, so the order is deterministic.
        Array.Sort(order, (a, b) => keys[b].CompareTo(keys[a]) is int c && c != 0 ? c : a.CompareTo(b));
        int keep = _options.TopK is int k ? Math.Min(k, order.Length) : order.Length;
        double cumulative = 0;
        int n = 0;
        while (n < keep)
        {
            cumulative += keys[order[n]];
            n++;
            if (cumulative >= _options.TopP) break;
        }
        double total = 0;
        for (int i = 0; i < n; i++) total += keys[order[i]];
        double u = _random.NextDouble() * total;
        for (int i = 0; i < n; i++)
        {
            u -= keys[order[i]];
            if (u <= 0) return order[i];
        }
        return order[n - 1];
    }
}
