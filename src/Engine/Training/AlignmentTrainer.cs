using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Engine.Adapters;
using Engine.Data;
using Engine.Distributed;
using Engine.Kernels;
using Engine.Models;
using Engine.Objectives;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>
/// The training loop shared by every method: a <see cref="TrainingSession"/> runs each optimizer step; this loop
/// adds the schedule, metrics (<see cref="RunLogger"/>), periodic eval, atomic checkpoints and their retention
/// (<see cref="CheckpointRetention"/>), resuming, an early stop on request (<see cref="StopSignal"/>) and the
/// final model in Hugging Face layout at OUT/final. On a data-parallel run every rank runs this loop in step and takes
/// the same decisions (stop requests are agreed over the ranks); rank 0 alone reports and writes OUT.
/// </summary>
public sealed class AlignmentTrainer
{
    readonly TrainingOptions _o;
    readonly ITrainingObserver _observer;
    readonly StopSignal? _stop;
    readonly ICommunicator _ranks;

    /// <param name="stop">checked after each optimizer step: when requested, the run writes a checkpoint and throws <see cref="TrainingStoppedException"/></param>
    /// <param name="ranks">the ranks of a data-parallel run (every rank constructs the trainer with the same options)</param>
    public AlignmentTrainer(TrainingOptions options, ITrainingObserver? observer = null, StopSignal? stop = null, ICommunicator? ranks = null)
    {
        _o = options;
        _ranks = ranks ?? SingleProcess.Instance;
        _observer = _ranks.IsRoot ? observer ?? SilentObserver.Instance : SilentObserver.Instance;
        _stop = stop;
    }

    /// <summary>
    /// The signal that asked for a stop, on any rank (lowest rank first): a signal may reach the ranks at different
    /// steps, and all must stop at the same one. One small all-reduce per step on more than one rank.
    /// </summary>
    PosixSignal? StopRequested()
    {
        if (_ranks.Size == 1) return _stop?.Signal;
        var signals = new double[_ranks.Size];
        signals[_ranks.Rank] = _stop?.Signal is PosixSignal s ? (int)s : 0;
        _ranks.AllReduceSum(signals);
        return signals.FirstOrDefault(v => v != 0) is var first && first != 0 ? (PosixSignal)(int)first : null;
    }

    public TrainingSummary Run()
    {
        _o.Validate();
        var method = _o.Step.Method;
        int globalMicroBatch = _o.Step.MicroBatch * _ranks.Size;
        bool writes = _ranks.IsRoot;
        if (writes)
        {
            Directory.CreateDirectory(_o.OutputDir);
            CheckpointStore.CleanTemporaries(_o.OutputDir);
        }

        // Every rank reads the same decisions from OUT; rank 0 changes it only after the barrier below.
        string? checkpoint = _o.ResumeFrom is null ? null : CheckpointStore.Resolve(_o.ResumeFrom);
        var state = checkpoint is null ? new TrainerState { Seed = _o.Seed, Method = method.Name } : CheckpointStore.ReadState(checkpoint);
        if (checkpoint != null && state.Method != method.Name)
            throw new EngineException($"{checkpoint}: checkpoint of a {state.Method} run cannot resume a {method.Name} run");
        if (checkpoint != null && state.GlobalMicroBatch > 0 && state.GlobalMicroBatch != globalMicroBatch)
            throw new EngineException($"{checkpoint}: was trained on global micro-batches of {state.GlobalMicroBatch} {method.ExampleNoun} (micro-batch × ranks); " +
                $"this run's are {_o.Step.MicroBatch} × {_ranks.Size} = {globalMicroBatch}, which would change the data position — " +
                $"resume with a --batch-size that gives {state.GlobalMicroBatch} over all ranks");
        // A folder holding a previous run is refused on every rank, before rank 0 changes anything.
        if (checkpoint is null && !_o.OverwriteOutputDir) RunFolder.PrepareNewRun(_o.OutputDir, overwrite: false);
        _ranks.Barrier();
        if (checkpoint is null && writes)
        {
            var removed = RunFolder.PrepareNewRun(_o.OutputDir, _o.OverwriteOutputDir);
            if (removed.Count > 0) _observer.Notice($"--overwrite-output-dir: removed the previous run's {string.Join(", ", removed.Select(Path.GetFileName))}");
        }
        // Checkpoints written before run ids existed get a new one: retention then never counts them as this run's.
        // Rank 0's id is every rank's (only rank 0 writes it, but the ranks' states stay the same).
        string runId = state.RunId ?? Guid.NewGuid().ToString("N");
        if (_ranks.Size > 1) runId = System.Text.Encoding.ASCII.GetString(_ranks.BroadcastArray(writes ? System.Text.Encoding.ASCII.GetBytes(runId) : null));
        state = state with { RunId = runId, GlobalMicroBatch = globalMicroBatch, Ranks = _ranks.Size };

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
        // The other ranks of a data-parallel run keep the same window (their rows equal rank 0's) but write nothing.
        var logger = writes ? RunLogger.Open(_o, checkpoint is null ? null : state.Step) : new RunLogger(_o.LoggingSteps, null, Array.Empty<IMetricsWriter>());
        var best = BestCheckpointMetric.From(_o);

        _observer.Started(new TrainingPlan(method.Name, totalSteps, state.Step, batchesPerEpoch, _o.Step.MicroBatch, _o.GradAccum, session.Train.Rows,
            session.Eval?.Rows, session.ReferenceHandling, Spelling.Of(_o.Step.Precision), Spelling.Of(_o.Step.Head)));
        if (StopRequested() is PosixSignal early) throw new TrainingStoppedException(early, state.Step, checkpoint, _o.OutputDir, _o.OverwriteOutputDir);

        var clock = Stopwatch.StartNew();
        long tokensThisRun = 0;
        var position = new DataPosition(state.Epoch, state.BatchIndex);
        int consecutiveNonFinite = state.ConsecutiveNonFinite, skipped = state.SkippedSteps;
        long tokensSeen = state.TokensSeen;
        double? bestValue = state.BestMetric;
        string? bestCheckpoint = state.BestCheckpoint;
        IReadOnlyDictionary<string, double> lastTrain = new Dictionary<string, double>();
        IReadOnlyDictionary<string, double>? lastEval = null;
        int lastEvalStep = -1;
        string? lastSaved = null;
        int lastSavedStep = -1;
        int stepIndex = state.Step;
        // --profile: ms per op class summed over this run's training steps (eval and checkpoints are not in it).
        var profiled = _o.Profile ? new Dictionary<string, double>() : null;
        int profiledSteps = 0;

        // Writes checkpoint-STEP (after the step's eval, which decides whether it is the best so far), then applies --save-total-limit.
        string SaveCheckpoint(int step)
        {
            if (step == lastSavedStep) return lastSaved!;
            if (best != null && lastEvalStep == step && best.ValueIn(lastEval!, method.Name) is var value && best.IsBetter(value, bestValue))
                (bestValue, bestCheckpoint) = (value, CheckpointStore.Prefix + step);
            Replicas.VerifyIdentical(_ranks, session.Policy.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), $"step {step}");
            if (!writes)
            {
                (lastSaved, lastSavedStep) = (Path.Combine(_o.OutputDir, CheckpointStore.Prefix + step), step);
                return lastSaved;
            }
            var saved = state with
            {
                Step = step, Epoch = position.Epoch, BatchIndex = position.BatchIndex, OptimizerSteps = session.Optimizer.StepCount,
                ConsecutiveNonFinite = consecutiveNonFinite, SkippedSteps = skipped, TokensSeen = tokensSeen,
                BestMetric = bestValue, BestCheckpoint = bestCheckpoint,
            };
            string dir = CheckpointStore.Save(_o.OutputDir, saved, session.Policy, session.Tokenizer, session.Optimizer, session.Adapters, session.Settings.Model);
            _observer.Notice($"checkpoint: {dir}");
            if (_o.SaveTotalLimit is int limit)
                foreach (var removed in CheckpointRetention.Apply(_o.OutputDir, state.RunId!, limit, Path.GetFileName(dir), bestCheckpoint))
                    _observer.Notice($"removed {removed} (--save-total-limit {limit})");
            (lastSaved, lastSavedStep) = (dir, step);
            return dir;
        }

        TrainingStoppedException Stopped(PosixSignal signal, int step)
        {
            logger.Flush(step);
            return new TrainingStoppedException(signal, step, step > state.Step ? SaveCheckpoint(step) : checkpoint, _o.OutputDir,
                _o.OverwriteOutputDir);
        }

        using (var batches = session.Train.Batches(epochs, position).GetEnumerator())
        {
            for (; stepIndex < totalSteps; stepIndex++)
            {
                var stepClock = Stopwatch.StartNew();
                double lr = schedule.At(stepIndex);
                var profiler = profiled != null ? StepProfiler.Start() : null;
                var outcome = session.TrainStep(batches, _o.GradAccum, lr);
                profiler?.Stop();
                if (outcome is null) break; // data exhausted
                var stepTime = stepClock.Elapsed;
                if (profiler != null)
                {
                    foreach (var (opClass, spent) in profiler.Milliseconds) profiled![opClass] = profiled.GetValueOrDefault(opClass) + spent;
                    profiledSteps++;
                }
                int step = stepIndex + 1;
                position = outcome.Next;
                if (outcome.Finite) consecutiveNonFinite = 0;
                else { consecutiveNonFinite++; skipped++; }
                tokensSeen += outcome.Tokens;
                tokensThisRun += outcome.Tokens;

                double epoch = position.Epoch + (double)position.BatchIndex / batchesPerEpoch;
                logger.Step(step, step == totalSteps, outcome, lr, epoch, stepTime);
                lastTrain = MetricWindow.Single(outcome, lr, epoch, stepTime);
                var elapsed = clock.Elapsed;
                int done = step - state.Step;
                var remaining = TimeSpan.FromSeconds(elapsed.TotalSeconds / done * (totalSteps - step));
                _observer.Step(new StepReport(step, totalSteps, lastTrain, elapsed, remaining, !outcome.Finite));

                if (consecutiveNonFinite >= _o.MaxConsecutiveNonFinite)
                {
                    logger.Flush(step);
                    throw new EngineException($"stopped at step {step}: {consecutiveNonFinite} consecutive steps had a non-finite loss or gradient " +
                        $"(loss {outcome.Loss.ToString(CultureInfo.InvariantCulture)}, grad norm {outcome.GradNorm.ToString(CultureInfo.InvariantCulture)}); " +
                        "lower --lr, check the data, or use --precision f32. No final model was written.");
                }

                // A stop request skips the periodic eval: the user is waiting for the checkpoint.
                if (StopRequested() is PosixSignal signal) throw Stopped(signal, step);
                if (session.Eval != null && _o.EvalSteps > 0 && step % _o.EvalSteps == 0)
                    (lastEval, lastEvalStep) = (EvaluateAndLog(session, logger, step, best), step);
                if (_o.SaveSteps > 0 && step % _o.SaveSteps == 0) SaveCheckpoint(step);
                if (StopRequested() is PosixSignal late) throw Stopped(late, step);
            }
        }
        logger.Flush(stepIndex); // when the data ran out before the last step
        if (StopRequested() is PosixSignal last) throw Stopped(last, stepIndex);

        if (session.Eval != null && (_o.EvalSteps <= 0 || stepIndex % _o.EvalSteps != 0))
            lastEval = EvaluateAndLog(session, logger, stepIndex, best);
        string? finalDir = null;
        Replicas.VerifyIdentical(_ranks, session.Policy.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), $"the end of training (step {stepIndex})");
        if (_o.SaveFinal && writes)
        {
            finalDir = Path.Combine(_o.OutputDir, RunFolder.FinalDir);
            var weights = session.Optimizer.Slots.Where(s => s.Master is not null).ToDictionary(s => s.Name, s => s.Master!);
            var dtype = weights.Count > 0 ? ScalarType.Float32 : session.Policy.Dtype;
            if (session.Adapters is { } adapters)
                AtomicDirectory.Write(finalDir, tmp => PeftAdapterFolder.WriteInto(tmp, adapters, session.Settings.Model, dtype, weights), replace: true);
            else
                ModelLoader.Save(session.Policy, session.Tokenizer, finalDir, dtype, replace: true, weightOverrides: weights);
        }
        var plots = _o.Plots && logger.Log is not null ? MetricPlots.Write(logger.Log, _o.OutputDir) : new List<string>();
        var summary = new TrainingSummary(_o.OutputDir, finalDir, stepIndex, skipped, clock.Elapsed,
            tokensThisRun / Math.Max(1e-9, clock.Elapsed.TotalSeconds), lastTrain, lastEval, plots,
            profiled?.ToDictionary(kv => kv.Key, kv => kv.Value / Math.Max(1, profiledSteps)));
        _observer.Finished(summary);
        return summary;
    }

    IReadOnlyDictionary<string, double> EvaluateAndLog(TrainingSession session, RunLogger logger, int atStep, BestCheckpointMetric? best)
    {
        var metrics = session.Evaluate();
        logger.Eval(atStep, metrics);
        _observer.Evaluated(atStep, metrics);
        best?.ValueIn(metrics, session.Settings.Method.Name); // a metric this method does not report fails at the first eval, not at a checkpoint
        return metrics;
    }
}
