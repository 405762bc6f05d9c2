using Engine.Objectives;

namespace Engine.Training;

/// <summary>
/// The optimizer steps since the last logged row (--logging-steps), reduced into one row as the HF Trainer / TRL
/// log them: the loss is the mean of the steps' losses (non-finite steps left out, as HF's logging_nan_inf_filter
/// does); the objective metrics are merged over every example of the window exactly as a step merges its
/// micro-batches (means over all examples, counts such as KTO's count/chosen summed, as TRL's log does);
/// learning_rate, grad_norm and epoch are the last step's; tokens_per_second is the window's tokens over its time;
/// skipped counts the non-finite steps.
/// </summary>
public sealed class MetricWindow
{
    int _steps, _finiteSteps, _skipped;
    double _lossSum, _nonFiniteLossSum;
    ObjectiveMetrics _finite = new(), _nonFinite = new();
    long _tokens;
    TimeSpan _time;
    double _lr, _gradNorm, _epoch;

    public int Steps => _steps;

    public void Add(StepOutcome outcome, double learningRate, double epoch, TimeSpan stepTime)
    {
        _steps++;
        if (outcome.Finite) { _finiteSteps++; _lossSum += outcome.Loss; _finite.Merge(outcome.Metrics); }
        else { _skipped++; _nonFiniteLossSum += outcome.Loss; _nonFinite.Merge(outcome.Metrics); }
        _tokens += outcome.Tokens;
        _time += stepTime;
        _lr = learningRate;
        _gradNorm = outcome.GradNorm;
        _epoch = epoch;
    }

    /// <summary>The window's row; the window is then empty.</summary>
    public Dictionary<string, double> Flush()
    {
        if (_steps == 0) throw new InvalidOperationException("no steps to log");
        // A window of only non-finite steps reports their (non-finite) values rather than nothing.
        bool anyFinite = _finiteSteps > 0;
        var metrics = anyFinite ? _finite : _nonFinite;
        var row = new Dictionary<string, double> { [MetricNames.Loss] = anyFinite ? _lossSum / _finiteSteps : _nonFiniteLossSum / _skipped };
        foreach (var name in metrics.Names) row[name] = metrics.Value(name);
        row[MetricNames.LearningRate] = _lr;
        row[MetricNames.GradNorm] = _gradNorm;
        row[MetricNames.Epoch] = _epoch;
        row[MetricNames.TokensPerSecond] = _tokens / Math.Max(1e-9, _time.TotalSeconds);
        if (_skipped > 0) row[MetricNames.Skipped] = _skipped;
        _steps = _finiteSteps = _skipped = 0;
        _lossSum = _nonFiniteLossSum = 0;
        _finite = new ObjectiveMetrics();
        _nonFinite = new ObjectiveMetrics();
        _tokens = 0;
        _time = TimeSpan.Zero;
        return row;
    }

    /// <summary>One step's row (what --logging-steps 1 logs).</summary>
    public static Dictionary<string, double> Single(StepOutcome outcome, double learningRate, double epoch, TimeSpan stepTime)
    {
        var w = new MetricWindow();
        w.Add(outcome, learningRate, epoch, stepTime);
        return w.Flush();
    }
}
