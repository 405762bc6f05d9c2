using System.Diagnostics;
using System.Globalization;
using Engine.Data;
using Engine.Distributed;
using Engine.Models;
using Engine.Objectives;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>
/// The training loop shared by every method: a <see cref="TrainingSession"/> runs each optimizer step; this loop
/// adds the schedule, metrics, periodic eval, atomic checkpoints, resuming and the final model in Hugging Face
/// layout at OUT/final. On a data-parallel run every rank runs this loop in step; rank 0 alone reports and writes OUT.
/// </summary>
public sealed class AlignmentTrainer
{
    readonly TrainingOptions _o;
    readonly ITrainingObserver _observer;
    readonly ICommunicator _ranks;

    /// <param name="ranks">the ranks of a data-parallel run (every rank constructs the trainer with the same options)</param>
    public AlignmentTrainer(TrainingOptions options, ITrainingObserver? observer = null, ICommunicator? ranks = null)
    {
        _o = options;
        _ranks = ranks ?? SingleProcess.Instance;
        _observer = _ranks.IsRoot ? observer ?? SilentObserver.Instance : SilentObserver.Instance;
    }

    public TrainingSummary Run()
    {
        _o.Validate();
        var method = _o.Step.Method;
        int globalMicroBatch = _o.Step.MicroBatch * _ranks.Size;

        // Every rank reads the same decisions from OUT before rank 0 writes anything there.
        string? checkpoint = _o.ResumeFrom is null ? null : CheckpointStore.Resolve(_o.ResumeFrom);
        var state = checkpoint is null ? new TrainerState { Seed = _o.Seed, Method = method.Name } : CheckpointStore.ReadState(checkpoint);
        if (checkpoint != null && state.Method != method.Name)
            throw new EngineException($"{checkpoint}: checkpoint of a {state.Method} run cannot resume a {method.Name} run");
        if (checkpoint != null && state.GlobalMicroBatch > 0 && state.GlobalMicroBatch != globalMicroBatch)
            throw new EngineException($"{checkpoint}: was trained on global micro-batches of {state.GlobalMicroBatch} {method.ExampleNoun} (micro-batch × ranks); " +
                $"this run's are {_o.Step.MicroBatch} × {_ranks.Size} = {globalMicroBatch}, which would change the data position — " +
                $"resume with a --batch-size that gives {state.GlobalMicroBatch} over all ranks");
        if (checkpoint is null && File.Exists(Path.Combine(_o.OutputDir, MetricsLog.FileName)))
            throw new EngineException($"{_o.OutputDir}: already holds a run ({MetricsLog.FileName}); pass --resume {_o.OutputDir} to continue it or choose a new --out");
        _ranks.Barrier();
        bool writes = _ranks.IsRoot;
        if (writes)
        {
            Directory.CreateDirectory(_o.OutputDir);
            CheckpointStore.CleanTemporaries(_o.OutputDir);
        }
        state = state with { GlobalMicroBatch = globalMicroBatch, Ranks = _ranks.Size };

        using var session = TrainingSession.Open(_o, new SessionData.Files(), _observer, checkpoint, state, ranks: _ranks);
        if (_ranks.Size > 1)
            _observer.Notice($"data-parallel: {_ranks.Description}, each training {_o.Step.MicroBatch} of every global micro-batch of {globalMicroBatch} " +
                $"{method.ExampleNoun}; {globalMicroBatch * _o.GradAccum} {method.ExampleNoun} per optimizer step");
        int batchesPerEpoch = session.Train.BatchesPerEpoch;
        int stepsPerEpoch = (batchesPerEpoch + _o.GradAccum - 1) / _o.GradAccum;
        int totalSteps = _o.MaxSteps ?? _o.Epochs * stepsPerEpoch;
        // With max steps the data repeats as often as needed (HF semantics: max_steps overrides epochs).
        int epochs = _o.MaxSteps is int ms ? Math.Max(_o.Epochs, (int)Math.Ceiling((double)ms * _o.GradAccum / batchesPerEpoch)) : _o.Epochs;
        var schedule = new LearningRateSchedule(_o.EffectiveLearningRate, _o.LrScheduler, _o.WarmupSteps, totalSteps);
        var log = writes ? new MetricsLog(Path.Combine(_o.OutputDir, MetricsLog.FileName), checkpoint is null ? null : state.Step) : null;

        _observer.Started(new TrainingPlan(method.Name, totalSteps, state.Step, batchesPerEpoch, _o.Step.MicroBatch, _o.GradAccum, session.Train.Rows,
            session.Eval?.Rows, session.ReferenceHandling, Spelling.Of(_o.Step.Precision), Spelling.Of(_o.Step.Head)));

        var clock = Stopwatch.StartNew();
        long tokensThisRun = 0;
        var position = new DataPosition(state.Epoch, state.BatchIndex);
        int consecutiveNonFinite = state.ConsecutiveNonFinite, skipped = state.SkippedSteps;
        long tokensSeen = state.TokensSeen;
        IReadOnlyDictionary<string, double> lastTrain = new Dictionary<string, double>();
        IReadOnlyDictionary<string, double>? lastEval = null;
        int stepIndex = state.Step;
        using (var batches = session.Train.Batches(epochs, position).GetEnumerator())
        {
            for (; stepIndex < totalSteps; stepIndex++)
            {
                var stepClock = Stopwatch.StartNew();
                double lr = schedule.At(stepIndex);
                var outcome = session.TrainStep(batches, _o.GradAccum, lr);
                if (outcome is null) break; // data exhausted
                position = outcome.Next;
                if (outcome.Finite) consecutiveNonFinite = 0;
                else { consecutiveNonFinite++; skipped++; }
                tokensSeen += outcome.Tokens;
                tokensThisRun += outcome.Tokens;

                var values = new Dictionary<string, double> { [MetricNames.Loss] = outcome.Loss };
                foreach (var name in outcome.Metrics.Names) values[name] = outcome.Metrics.Value(name);
                values[MetricNames.LearningRate] = lr;
                values[MetricNames.GradNorm] = outcome.GradNorm;
                values[MetricNames.Epoch] = position.Epoch + (double)position.BatchIndex / batchesPerEpoch;
                values[MetricNames.TokensPerSecond] = outcome.Tokens / Math.Max(1e-9, stepClock.Elapsed.TotalSeconds);
                if (!outcome.Finite) values[MetricNames.Skipped] = 1;
                log?.Append(values, stepIndex + 1);
                lastTrain = values;
                var elapsed = clock.Elapsed;
                int done = stepIndex + 1 - state.Step;
                var remaining = TimeSpan.FromSeconds(elapsed.TotalSeconds / done * (totalSteps - stepIndex - 1));
                _observer.Step(new StepReport(stepIndex + 1, totalSteps, values, elapsed, remaining, !outcome.Finite));

                if (consecutiveNonFinite >= _o.MaxConsecutiveNonFinite)
                    throw new EngineException($"stopped at step {stepIndex + 1}: {consecutiveNonFinite} consecutive steps had a non-finite loss or gradient " +
                        $"(loss {outcome.Loss.ToString(CultureInfo.InvariantCulture)}, grad norm {outcome.GradNorm.ToString(CultureInfo.InvariantCulture)}); " +
                        "lower --lr, check the data, or use --precision f32. No final model was written.");

                if (session.Eval != null && _o.EvalSteps > 0 && (stepIndex + 1) % _o.EvalSteps == 0)
                    lastEval = EvaluateAndLog(session, log, stepIndex + 1);
                if (_o.SaveSteps > 0 && (stepIndex + 1) % _o.SaveSteps == 0)
                {
                    var saved = state with
                    {
                        Step = stepIndex + 1, Epoch = position.Epoch, BatchIndex = position.BatchIndex, OptimizerSteps = session.Optimizer.StepCount,
                        ConsecutiveNonFinite = consecutiveNonFinite, SkippedSteps = skipped, TokensSeen = tokensSeen,
                    };
                    Replicas.VerifyIdentical(_ranks, session.Policy.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), $"step {stepIndex + 1}");
                    if (writes)
                    {
                        string dir = CheckpointStore.Save(_o.OutputDir, saved, session.Policy, session.Tokenizer, session.Optimizer);
                        _observer.Notice($"checkpoint: {dir}");
                    }
                }
            }
        }

        if (session.Eval != null && (_o.EvalSteps <= 0 || stepIndex % _o.EvalSteps != 0))
            lastEval = EvaluateAndLog(session, log, stepIndex);
        string? finalDir = null;
        Replicas.VerifyIdentical(_ranks, session.Policy.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), $"the end of training (step {stepIndex})");
        if (_o.SaveFinal && writes)
        {
            finalDir = Path.Combine(_o.OutputDir, "final");
            var weights = session.Optimizer.Slots.Where(s => s.Master is not null).ToDictionary(s => s.Name, s => s.Master!);
            ModelLoader.Save(session.Policy, session.Tokenizer, finalDir, weights.Count > 0 ? ScalarType.Float32 : session.Policy.Dtype, replace: true,
                weightOverrides: weights);
        }
        var plots = _o.Plots && log != null ? MetricPlots.Write(log, _o.OutputDir) : new List<string>();
        var summary = new TrainingSummary(_o.OutputDir, finalDir, stepIndex, skipped, clock.Elapsed,
            tokensThisRun / Math.Max(1e-9, clock.Elapsed.TotalSeconds), lastTrain, lastEval, plots);
        _observer.Finished(summary);
        return summary;
    }

    IReadOnlyDictionary<string, double> EvaluateAndLog(TrainingSession session, MetricsLog? log, int atStep)
    {
        var metrics = session.Evaluate();
        log?.Append(metrics.ToDictionary(kv => MetricNames.EvalPrefix + kv.Key, kv => kv.Value), atStep);
        _observer.Evaluated(atStep, metrics);
        return metrics;
    }
}
