using Engine.Objectives;
using TorchSharp.Modules;
using static TorchSharp.torch.utils;

namespace Engine.Training;

/// <summary>A destination of metric rows (metrics.jsonl, TensorBoard).</summary>
public interface IMetricsWriter
{
    /// <summary>One row: training names as <see cref="MetricNames"/> spells them, eval rows with <see cref="MetricNames.EvalPrefix"/>.</summary>
    void Write(IReadOnlyDictionary<string, double> row, int step);
}

/// <summary>
/// --report-to tensorboard: every metric of metrics.jsonl as a TensorBoard scalar in <c>OUT/runs/</c> under the
/// HF Trainer's tags (<c>train/loss</c>, <c>train/rewards/chosen</c>, <c>eval/loss</c>, …), written as it is logged.
/// Uses TorchSharp's SummaryWriter, which appends and flushes each event, so TensorBoard sees a run live.
/// A resumed run starts a new event file in the same folder; TensorBoard reads them in order.
/// </summary>
public sealed class TensorBoardLog : IMetricsWriter
{
    public const string Folder = "runs";
    /// <summary>The file names TensorBoard event files start with (how --overwrite-output-dir recognises them).</summary>
    public const string EventFilePrefix = "events.out.tfevents.";
    const string TrainTag = "train/", EvalTag = "eval/";

    readonly SummaryWriter _writer;

    public TensorBoardLog(string outputDir)
    {
        _writer = tensorboard.SummaryWriter(Path.Combine(outputDir, Folder));
    }

    /// <summary>HF's TensorBoardCallback naming: eval_x → eval/x, everything else → train/x.</summary>
    public static string Tag(string metric) => metric.StartsWith(MetricNames.EvalPrefix, StringComparison.Ordinal)
        ? EvalTag + metric[MetricNames.EvalPrefix.Length..]
        : TrainTag + metric;

    public void Write(IReadOnlyDictionary<string, double> row, int step)
    {
        foreach (var (name, value) in row) _writer.add_scalar(Tag(name), (float)value, step);
    }
}

/// <summary>
/// Where a run's metrics go: metrics.jsonl, plus TensorBoard with --report-to; training steps are averaged over
/// --logging-steps (see <see cref="MetricWindow"/>). Every file writer is opened here, in one place, so a process
/// that must not write (another rank of a data-parallel run) can be given a logger without writers.
/// </summary>
public sealed class RunLogger
{
    readonly int _loggingSteps;
    readonly IReadOnlyList<IMetricsWriter> _writers;
    readonly MetricWindow _window = new();

    /// <summary>metrics.jsonl, when this logger writes it (plots read it).</summary>
    public MetricsLog? Log { get; }

    public RunLogger(int loggingSteps, MetricsLog? log, IReadOnlyList<IMetricsWriter> others)
    {
        _loggingSteps = loggingSteps;
        Log = log;
        _writers = (log is null ? others : others.Prepend(log)).ToList();
    }

    /// <param name="resumeStep">the checkpoint's step when resuming: metrics.jsonl keeps its rows up to there</param>
    public static RunLogger Open(TrainingOptions o, int? resumeStep)
    {
        var log = new MetricsLog(Path.Combine(o.OutputDir, MetricsLog.FileName), resumeStep);
        var others = new List<IMetricsWriter>();
        if (o.ReportTo == ReportTarget.TensorBoard) others.Add(new TensorBoardLog(o.OutputDir));
        return new RunLogger(o.LoggingSteps, log, others);
    }

    /// <summary>Adds a finished step; writes a row when <paramref name="step"/> is a multiple of --logging-steps or the run's last.</summary>
    public void Step(int step, bool last, StepOutcome outcome, double learningRate, double epoch, TimeSpan stepTime)
    {
        _window.Add(outcome, learningRate, epoch, stepTime);
        if (last || step % _loggingSteps == 0) Write(_window.Flush(), step);
    }

    /// <summary>Writes the steps since the last row (at the end of a run, or when it stops early).</summary>
    public void Flush(int step)
    {
        if (_window.Steps > 0) Write(_window.Flush(), step);
    }

    public void Eval(int step, IReadOnlyDictionary<string, double> metrics) =>
        Write(metrics.ToDictionary(kv => MetricNames.EvalPrefix + kv.Key, kv => kv.Value), step);

    void Write(IReadOnlyDictionary<string, double> row, int step)
    {
        foreach (var w in _writers) w.Write(row, step);
    }
}
