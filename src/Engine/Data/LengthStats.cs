namespace Engine.Data;

/// <summary>Summary of a set of lengths (characters or tokens).</summary>
public sealed record LengthStats(int Count, int Min, double Mean, int Median, int P95, int Max)
{
    public static LengthStats Of(IEnumerable<int> values)
    {
        var sorted = values.ToArray();
        if (sorted.Length == 0) return new LengthStats(0, 0, 0, 0, 0, 0);
        Array.Sort(sorted);
        // Nearest-rank percentiles: always a length that occurs in the data.
        int Rank(double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
        return new LengthStats(sorted.Length, sorted[0], sorted.Average(v => (double)v), Rank(0.5), Rank(0.95), sorted[^1]);
    }

    public override string ToString() =>
        Count == 0 ? "none" : $"min {Min}, mean {Mean.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)}, median {Median}, p95 {P95}, max {Max}";
}
