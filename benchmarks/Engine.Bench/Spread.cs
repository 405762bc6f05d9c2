namespace Engine.Bench;

/// <summary>
/// Min, median and max of repeated measurements of one figure. Quick benchmarks report all three: on a shared
/// machine one run is not a result, and a wide spread says the load changed while it ran.
/// </summary>
public readonly record struct Spread(double Min, double Median, double Max)
{
    /// <summary>Max over min above this makes a figure suspect: compare ratios measured in the same run instead.</summary>
    public const double Warning = 1.3;

    public static Spread Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) throw new ArgumentException("no measurements", nameof(values));
        int n = sorted.Length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        return new Spread(sorted[0], median, sorted[^1]);
    }

    /// <summary>Slowest over fastest (for times) or largest over smallest (for rates): the same number either way.</summary>
    public double Ratio => Min > 0 ? Max / Min : double.PositiveInfinity;

    public bool IsWide => Ratio > Warning;

    public Dictionary<string, double> ToJson(int digits) => new()
    {
        ["min"] = Math.Round(Min, digits), ["median"] = Math.Round(Median, digits), ["max"] = Math.Round(Max, digits),
    };

    /// <summary>The warning printed for a figure whose spread exceeds <see cref="Warning"/>, or null.</summary>
    public string? WarningFor(string figure, BenchmarkMachine machine) => IsWide
        ? $"warning: {figure} varied {Ratio:F2}× between runs (> {Warning}×): the machine was busy (load {machine.LoadAverageBefore} → {machine.LoadAverageAfter}); compare ratios, not absolute figures"
        : null;
}
