using System.Globalization;
using Engine.Cli.Options;
using Engine.Training;
using static Engine.Objectives.MetricNames;

namespace Engine.Cli;

/// <summary>
/// Progress for a terminal: a live bar (step, loss, reward margin, kl, lr, tokens/s, ETA) redrawn in place on a
/// TTY, one line every few steps otherwise; notices on stderr; a summary table at the end.
/// </summary>
public sealed class ConsoleTrainingObserver : ITrainingObserver
{
    readonly TextWriter _out, _err;
    readonly bool _interactive;
    int _lastPrinted = -1;

    public ConsoleTrainingObserver(CliContext context)
    {
        _out = context.Out;
        _err = context.Err;
        _interactive = context.Interactive;
    }

    static string F(double v) => v.ToString(Math.Abs(v) < 1e-3 && v != 0 ? "0.00e+0" : "0.0000", CultureInfo.InvariantCulture);

    public void Notice(string message) { EndLine(); _err.WriteLine(message); }

    public void Started(TrainingPlan p)
    {
        _err.WriteLine($"{p.Method}: {p.TotalSteps} steps (from {p.StartStep}), {p.TrainRows} training rows in {p.BatchesPerEpoch} microbatches of {p.MicroBatchSize} per epoch, " +
            $"grad accum {p.GradAccum}{(p.EvalRows is int e ? $", {e} eval rows" : "")}; reference: {p.ReferenceHandling}; precision {p.Precision}; log-probs {p.LogProb}");
    }

    public void Step(StepReport r)
    {
        var v = r.Values;
        string Get(string k) => v.TryGetValue(k, out var x) ? F(x) : "-";
        int width = 24;
        int filled = (int)Math.Round(width * (double)r.Step / Math.Max(1, r.TotalSteps));
        string bar = new string('#', filled) + new string('.', width - filled);
        string line = $"[{bar}] {r.Step}/{r.TotalSteps} loss {Get(Loss)} margin {Get(RewardsMargins)} kl {Get(Kl)} " +
            $"lr {v[LearningRate].ToString("0.00e+0", CultureInfo.InvariantCulture)} {v[TokensPerSecond]:F0} tok/s ETA {r.Remaining:hh\\:mm\\:ss}" +
            (r.Skipped ? " (skipped: non-finite)" : "");
        if (_interactive)
        {
            _err.Write("\r" + line.PadRight(Console.WindowWidth > 0 ? Math.Min(Console.WindowWidth - 1, 160) : 0));
            _lastPrinted = r.Step;
        }
        else if (r.Step == 1 || r.Step == r.TotalSteps || r.Step % Math.Max(1, r.TotalSteps / 20) == 0 || r.Skipped)
        {
            _err.WriteLine(line);
        }
    }

    public void Evaluated(int step, IReadOnlyDictionary<string, double> metrics)
    {
        EndLine();
        _err.WriteLine($"eval @ step {step}: " + string.Join(", ", metrics.Select(kv => $"{kv.Key} {F(kv.Value)}")));
    }

    public void Finished(TrainingSummary s)
    {
        EndLine();
        _out.WriteLine($"done: {s.Steps} steps in {s.Elapsed:hh\\:mm\\:ss} ({s.TokensPerSecond:F0} tokens/s){(s.SkippedSteps > 0 ? $", {s.SkippedSteps} skipped (non-finite)" : "")}");
        var names = s.LastTrain.Keys.Where(k => k is not (LearningRate or Epoch or TokensPerSecond)).ToList();
        _out.WriteLine($"{"metric",-24} {"last train step",16} {"eval",12}");
        foreach (var n in names.Union(s.LastEval?.Keys ?? Enumerable.Empty<string>()))
        {
            string train = s.LastTrain.TryGetValue(n, out var t) ? F(t) : "";
            string eval = s.LastEval != null && s.LastEval.TryGetValue(n, out var e) ? F(e) : "";
            _out.WriteLine($"{n,-24} {train,16} {eval,12}");
        }
        if (s.FinalModelDir != null) _out.WriteLine($"final model: {s.FinalModelDir}");
        _out.WriteLine($"metrics: {Path.Combine(s.OutputDir, MetricsLog.FileName)}");
        foreach (var p in s.Plots) _out.WriteLine($"plot: {p}");
        if (s.Profile is { } profile)
        {
            double total = profile.Values.Sum();
            _out.WriteLine("profile: time per training step by op class");
            _out.WriteLine($"  {"op class",-11} {"ms/step",9} {"share",6}");
            foreach (var (name, ms) in profile.OrderByDescending(kv => kv.Value))
                _out.WriteLine($"  {name,-11} {ms,9:F1} {100 * ms / Math.Max(1e-9, total),5:F1}%");
        }
    }

    void EndLine()
    {
        if (_interactive && _lastPrinted >= 0) { _err.WriteLine(); _lastPrinted = -1; }
    }
}
