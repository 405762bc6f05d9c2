namespace Engine.Training;

/// <summary>What a run is about to do, reported once before the first step.</summary>
public sealed record TrainingPlan(string Method, int TotalSteps, int StartStep, int BatchesPerEpoch, int MicroBatchSize, int GradAccum,
    int TrainRows, int? EvalRows, string ReferenceHandling, string Precision, string LogProb);

/// <summary>One optimizer step's figures (the row --logging-steps 1 writes to metrics.jsonl).</summary>
public sealed record StepReport(int Step, int TotalSteps, IReadOnlyDictionary<string, double> Values, TimeSpan Elapsed, TimeSpan Remaining, bool Skipped);

public sealed record TrainingSummary(
    string OutputDir, string? FinalModelDir, int Steps, int SkippedSteps, TimeSpan Elapsed, double TokensPerSecond,
    IReadOnlyDictionary<string, double> LastTrain, IReadOnlyDictionary<string, double>? LastEval, IReadOnlyList<string> Plots,
    IReadOnlyDictionary<string, double>? Profile = null);

/// <summary>Receives progress from a run (the CLI draws the progress bar and tables from these).</summary>
public interface ITrainingObserver
{
    void Notice(string message);
    void Started(TrainingPlan plan);
    void Step(StepReport report);
    void Evaluated(int step, IReadOnlyDictionary<string, double> metrics);
    void Finished(TrainingSummary summary);
}

/// <summary>An observer that ignores everything (library use, tests).</summary>
public sealed class SilentObserver : ITrainingObserver
{
    public static readonly SilentObserver Instance = new();
    public List<string> Notices { get; } = new();
    public void Notice(string message) => Notices.Add(message);
    public void Started(TrainingPlan plan) { }
    public void Step(StepReport report) { }
    public void Evaluated(int step, IReadOnlyDictionary<string, double> metrics) { }
    public void Finished(TrainingSummary summary) { }
}
