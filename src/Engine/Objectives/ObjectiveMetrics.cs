using System.Collections;
using System.Globalization;

namespace Engine.Objectives;

/// <summary>How a metric is reduced when it is reported.</summary>
public enum MetricKind
{
    /// <summary>Σ sum / Σ count over everything merged (exact across microbatches).</summary>
    Mean,
    /// <summary>Σ sum: a count per step (e.g. rows of each KTO class).</summary>
    Total,
    /// <summary>Value(minuend) − Value(subtrahend), taken after merging (KTO's rewards/margins).</summary>
    Difference,
}

/// <summary>
/// Metrics of one or more microbatches under TRL's names, accumulated in fp64 as (sum, count) so that merging
/// microbatches gives exactly the step's value. Non-finite values are kept (they propagate) and flagged whenever
/// the metrics are printed.
/// </summary>
public sealed class ObjectiveMetrics : IEnumerable<string>
{
    struct Entry
    {
        public MetricKind Kind;
        public double Sum;
        public double Count;
        public string? Minuend, Subtrahend;
    }

    readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    readonly List<string> _order = new();

    /// <summary>Metric names in the order they were first added.</summary>
    public IReadOnlyList<string> Names => _order;

    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>Adds <paramref name="sum"/> over <paramref name="count"/> items to a mean metric.</summary>
    public void Add(string name, double sum, double count) => Accumulate(name, MetricKind.Mean, sum, count);

    /// <summary>Adds to a total (reported as Σ, not averaged).</summary>
    public void AddTotal(string name, double value) => Accumulate(name, MetricKind.Total, value, 1);

    /// <summary>Makes <paramref name="name"/> a mean metric whose value is <paramref name="value"/>, replacing what was
    /// merged under it (e.g. the optimizer step's loss, which weighs micro-batches as the step did).</summary>
    public void Set(string name, double value)
    {
        if (!_entries.ContainsKey(name)) _order.Add(name);
        _entries[name] = new Entry { Kind = MetricKind.Mean, Sum = value, Count = 1 };
    }

    /// <summary>Declares <paramref name="name"/> = Value(minuend) − Value(subtrahend), evaluated when read.</summary>
    public void AddDifference(string name, string minuend, string subtrahend)
    {
        if (_entries.TryGetValue(name, out var e))
        {
            if (e.Kind != MetricKind.Difference || e.Minuend != minuend || e.Subtrahend != subtrahend)
                throw new InvalidOperationException($"metric '{name}' is already defined differently");
            return;
        }
        _entries[name] = new Entry { Kind = MetricKind.Difference, Minuend = minuend, Subtrahend = subtrahend };
        _order.Add(name);
    }

    void Accumulate(string name, MetricKind kind, double sum, double count)
    {
        if (count < 0 || double.IsNaN(count)) throw new ArgumentException($"metric '{name}': count must be ≥ 0, got {count}");
        if (_entries.TryGetValue(name, out var e))
        {
            if (e.Kind != kind) throw new InvalidOperationException($"metric '{name}' is a {e.Kind}, not a {kind}");
            e.Sum += sum;
            e.Count += count;
            _entries[name] = e;
        }
        else
        {
            _entries[name] = new Entry { Kind = kind, Sum = sum, Count = count };
            _order.Add(name);
        }
    }

    /// <summary>Adds every metric of <paramref name="other"/> into this one (microbatches of one step).</summary>
    public void Merge(ObjectiveMetrics other)
    {
        foreach (var name in other._order)
        {
            var e = other._entries[name];
            if (e.Kind == MetricKind.Difference) AddDifference(name, e.Minuend!, e.Subtrahend!);
            else Accumulate(name, e.Kind, e.Sum, e.Count);
        }
    }

    public MetricKind KindOf(string name) => Get(name).Kind;
    /// <summary>The two metrics a <see cref="MetricKind.Difference"/> subtracts.</summary>
    public (string Minuend, string Subtrahend) DifferenceOf(string name) => Get(name) is { Kind: MetricKind.Difference } e
        ? (e.Minuend!, e.Subtrahend!) : throw new InvalidOperationException($"metric '{name}' is not a difference");
    public double Sum(string name) => Get(name).Sum;
    public double Count(string name) => Get(name).Count;

    /// <summary>The reported value: Σsum/Σcount for means, Σ for totals, the difference of the two
    /// reported values for differences (NaN when either side is absent).</summary>
    public double Value(string name)
    {
        var e = Get(name);
        return e.Kind switch
        {
            MetricKind.Mean => e.Count > 0 ? e.Sum / e.Count : double.NaN,
            MetricKind.Total => e.Sum,
            _ => Contains(e.Minuend!) && Contains(e.Subtrahend!) ? Value(e.Minuend!) - Value(e.Subtrahend!) : double.NaN,
        };
    }

    /// <summary>Same as <see cref="Value"/>; for a <see cref="MetricKind.Total"/> it is the total.</summary>
    public double Mean(string name) => Value(name);

    public bool IsFinite(string name) => double.IsFinite(Value(name));

    /// <summary>Names whose reported value is NaN or ±∞.</summary>
    public IReadOnlyList<string> NonFiniteNames => _order.Where(n => !IsFinite(n)).ToList();

    /// <summary>"name=value", with non-finite values flagged so they are never mistaken for numbers.</summary>
    public string Format(string name)
    {
        double v = Value(name);
        string text = v.ToString("G6", CultureInfo.InvariantCulture);
        return double.IsFinite(v) ? $"{name}={text}" : $"{name}={text} [NON-FINITE]";
    }

    public override string ToString() => string.Join(", ", _order.Select(Format));

    public IEnumerator<string> GetEnumerator() => _order.GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    Entry Get(string name) => _entries.TryGetValue(name, out var e)
        ? e : throw new KeyNotFoundException($"no metric named '{name}' (have: {string.Join(", ", _order)})");
}
