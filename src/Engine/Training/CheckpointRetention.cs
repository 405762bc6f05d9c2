using System.Reflection;
using Engine.Objectives;

namespace Engine.Training;

/// <summary>
/// --metric-for-best-model and --greater-is-better as the HF Trainer reads them: an eval metric (the eval_ prefix is
/// optional), compared at each checkpoint that has an eval at its step; greater is better unless the name ends in "loss".
/// </summary>
public sealed record BestCheckpointMetric(string Metric, bool GreaterIsBetter)
{
    /// <summary>Every metric name a run can log (the constants of <see cref="MetricNames"/>).</summary>
    static readonly IReadOnlyList<string> KnownMetrics = typeof(MetricNames).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral && f.FieldType == typeof(string) && f.Name != nameof(MetricNames.EvalPrefix))
        .Select(f => (string)f.GetRawConstantValue()!).ToList();

    public static BestCheckpointMetric? From(TrainingOptions o)
    {
        if (o.MetricForBestModel is not string given) return null;
        string metric = given.StartsWith(MetricNames.EvalPrefix, StringComparison.Ordinal) ? given[MetricNames.EvalPrefix.Length..] : given;
        return new BestCheckpointMetric(metric, o.GreaterIsBetter ?? !metric.EndsWith(MetricNames.Loss, StringComparison.Ordinal));
    }

    public static void Validate(TrainingOptions o)
    {
        var best = From(o)!;
        if (!KnownMetrics.Contains(best.Metric))
            throw new EngineException($"--metric-for-best-model: unknown metric '{o.MetricForBestModel}' (metrics: {string.Join(", ", KnownMetrics)})");
        if (o.EvalDataPath is null && o.EvalFraction == 0)
            throw new EngineException("--metric-for-best-model compares eval metrics: give an eval split (--eval-data FILE or --eval-fraction F)");
        if (o.EvalSteps <= 0 || o.SaveSteps <= 0 || o.SaveSteps % o.EvalSteps != 0)
            throw new EngineException("--metric-for-best-model compares each checkpoint by the eval at its step: " +
                $"--save-steps ({o.SaveSteps}) must be a positive multiple of --eval-steps ({o.EvalSteps})");
    }

    /// <summary>The metric in an eval pass's results; an error naming what the eval reports when the method has no such metric.</summary>
    public double ValueIn(IReadOnlyDictionary<string, double> evalMetrics, string method) =>
        evalMetrics.TryGetValue(Metric, out double v) ? v
            : throw new EngineException($"--metric-for-best-model {Metric}: {method}'s eval reports no such metric (it reports {string.Join(", ", evalMetrics.Keys)})");

    /// <summary>HF's comparison; a non-finite value is never the best.</summary>
    public bool IsBetter(double value, double? best) =>
        double.IsFinite(value) && (best is not double b || (GreaterIsBetter ? value > b : value < b));
}

/// <summary>
/// --save-total-limit: after a new checkpoint is complete, deletes this run's oldest checkpoints so that at most N
/// remain, as the HF Trainer rotates them: the best checkpoint is always kept (taking the place of the oldest of
/// the N; with N = 1 the newest and the best may both remain). Only checkpoints whose trainer state carries this
/// run's id are counted or deleted, never another run's or a folder Engine did not write.
/// </summary>
public static class CheckpointRetention
{
    /// <param name="newest">the checkpoint just written (always kept, whatever other step numbers exist)</param>
    /// <returns>the folders deleted</returns>
    public static IReadOnlyList<string> Apply(string outputDir, string runId, int limit, string newest, string? best)
    {
        var names = CheckpointStore.List(outputDir).Where(c => c.State.RunId == runId).Select(c => c.Name).ToList();
        var deleted = new List<string>();
        foreach (var name in Doomed(names, limit, newest, best))
        {
            string dir = Path.Combine(outputDir, name);
            CheckpointStore.Delete(dir);
            deleted.Add(dir);
        }
        return deleted;
    }

    /// <summary>Which of a run's checkpoints (names, oldest first) the rotation deletes.</summary>
    public static IReadOnlyList<string> Doomed(IReadOnlyList<string> oldestFirst, int limit, string newest, string? best)
    {
        var order = oldestFirst.Where(n => n != newest).ToList();
        order.Add(newest);
        if (best is not null && best != newest && order.Remove(best))
            order.Insert(order.Count - 1, best); // HF moves the best just before the newest, so it outlives older ones
        int keep = best is not null && best != newest && order.Contains(best) && limit == 1 ? 2 : limit;
        return order.Take(Math.Max(0, order.Count - keep)).ToList();
    }
}
