using System.Globalization;
using Engine.Distributed;

namespace Engine.Objectives;

/// <summary>
/// Metrics of every rank of a data-parallel step combined as one process would have merged them: the (sum, count) of
/// each mean and the sum of each total are summed over ranks, so rewards, log-probs, accuracies and counts of an
/// N-rank step equal those of one rank that saw the whole global batch. A metric that only some ranks have (a KTO class
/// absent from one rank's shard) is kept with the ranks' sums that have it, as the merged microbatches would.
/// </summary>
public static class MetricReduction
{
    public static ObjectiveMetrics AcrossRanks(this ObjectiveMetrics local, ICommunicator ranks)
    {
        if (ranks.Size == 1) return local;
        // Names first (every rank must build the same vector), in the order rank 0, then any new ones from rank 1, …
        var union = new List<(string Name, MetricKind Kind, string? Minuend, string? Subtrahend)>();
        var seen = new Dictionary<string, (MetricKind Kind, string? Minuend, string? Subtrahend)>(StringComparer.Ordinal);
        foreach (var description in ranks.AllGather(string.Join("\n", local.Names.Select(n => Describe(local, n)))))
            foreach (var line in description.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var f = line.Split('\t');
                var entry = (Kind: Enum.Parse<MetricKind>(f[1]), Minuend: f.Length > 2 ? f[2] : null, Subtrahend: f.Length > 3 ? f[3] : null);
                if (seen.TryGetValue(f[0], out var known))
                {
                    if (known != entry) throw new InvalidOperationException($"metric '{f[0]}' is defined differently on two ranks");
                    continue;
                }
                seen[f[0]] = entry;
                union.Add((f[0], entry.Kind, entry.Minuend, entry.Subtrahend));
            }
        var numeric = union.Where(u => u.Kind != MetricKind.Difference).ToList();
        var values = new double[2 * numeric.Count];
        for (int i = 0; i < numeric.Count; i++)
            if (local.Contains(numeric[i].Name))
            {
                values[2 * i] = local.Sum(numeric[i].Name);
                values[2 * i + 1] = local.Count(numeric[i].Name);
            }
        ranks.AllReduceSum(values);
        var merged = new ObjectiveMetrics();
        int k = 0;
        foreach (var (name, kind, minuend, subtrahend) in union)
        {
            switch (kind)
            {
                case MetricKind.Mean: merged.Add(name, values[2 * k], values[2 * k + 1]); k++; break;
                case MetricKind.Total: merged.AddTotal(name, values[2 * k]); k++; break;
                default: merged.AddDifference(name, minuend!, subtrahend!); break;
            }
        }
        return merged;
    }

    static string Describe(ObjectiveMetrics m, string name)
    {
        var kind = m.KindOf(name);
        if (kind != MetricKind.Difference) return $"{name}\t{kind.ToString()}";
        var (minuend, subtrahend) = m.DifferenceOf(name);
        return string.Create(CultureInfo.InvariantCulture, $"{name}\t{kind}\t{minuend}\t{subtrahend}");
    }
}
