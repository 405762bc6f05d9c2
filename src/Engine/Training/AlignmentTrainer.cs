using System.Diagnostics;
using System.Globalization;
using Engine.Data;
using Engine.Models;
using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>
/// The training loop shared by every method: data → policy forward → (reference) → objective → AdamW, with
/// gradient accumulation, clipping, a scheduler, a non-finite guard, periodic eval and atomic checkpoints, and
/// the final model in Hugging Face layout at OUT/final.
/// </summary>
public sealed class AlignmentTrainer
{
    readonly TrainingOptions _o;
    readonly ITrainingObserver _observer;

    public AlignmentTrainer(TrainingOptions options, ITrainingObserver? observer = null)
    {
        _o = options;
        _observer = observer ?? SilentObserver.Instance;
    }

    public static ScalarType ComputeDtype(Precision p) => p == Precision.F32 ? ScalarType.Float32 : ScalarType.BFloat16;

    public TrainingSummary Run()
    {
        var info = AlignmentMethods.Info(AlignmentMethods.Parse(_o.Method));
        Validate(info);
        var objectives = ObjectiveSettings.From(_o, info);
        Directory.CreateDirectory(_o.OutputDir);
        CheckpointStore.CleanTemporaries(_o.OutputDir);

        string? checkpoint = _o.ResumeFrom is null ? null : CheckpointStore.Resolve(_o.ResumeFrom);
        var state = checkpoint is null ? new TrainerState { Seed = _o.Seed, Method = info.Name } : CheckpointStore.ReadState(checkpoint);
        if (checkpoint != null && state.Method != info.Name)
            throw new EngineException($"{checkpoint}: checkpoint of a {state.Method} run cannot resume a {info.Name} run");
        if (checkpoint is null && File.Exists(Path.Combine(_o.OutputDir, "metrics.jsonl")))
            throw new EngineException($"{_o.OutputDir}: already holds a run (metrics.jsonl); pass --resume {_o.OutputDir} to continue it or choose a new --out");
        manual_seed(_o.Seed);

        var loaded = ModelLoader.Load(checkpoint is null ? _o.ModelPath : CheckpointStore.ModelDir(checkpoint), ScalarType.Float32, requireTokenizer: true);
        var policy = loaded.Model;
        var tokenizer = loaded.RequireTokenizer();
        // Mixed precision: fp32 master copies are taken before the cast, so they hold the checkpoint's exact values.
        Dictionary<string, Tensor>? masters = null;
        if (_o.Precision == Precision.Bf16Mixed)
            masters = policy.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        policy.ConvertTo(ComputeDtype(_o.Precision));
        if (_o.ActivationCheckpointing) ActivationCheckpointing.Enable(policy);

        var data = RunData.Prepare(_o, info, tokenizer, _o.BatchSize);
        foreach (var n in data.Notices) _observer.Notice(n);
        if (info.Method == AlignmentMethod.Kto && KtoObjective.CheckImbalance(data.Train.Labels.Desirable, data.Train.Labels.Undesirable,
                _o.DesirableWeight, _o.UndesirableWeight) is { } warning)
            _observer.Notice("warning: " + warning);

        using var reference = OpenReference(info, policy, checkpoint != null, data);
        using var optimizer = new AdamW(policy.named_parameters().Select(p => (p.name, p.parameter)), weightDecay: _o.WeightDecay,
            stateDtype: _o.Bf16OptimizerStates ? ScalarType.BFloat16 : ScalarType.Float32,
            masters: masters, masterWeights: _o.Precision != Precision.Bf16Pure);
        if (masters != null) foreach (var m in masters.Values) m.Dispose();
        if (checkpoint != null) CheckpointStore.LoadOptimizer(checkpoint, optimizer, state);

        int batchesPerEpoch = data.Train.BatchesPerEpoch;
        int stepsPerEpoch = (batchesPerEpoch + _o.GradAccum - 1) / _o.GradAccum;
        int totalSteps = _o.MaxSteps ?? _o.Epochs * stepsPerEpoch;
        // With max steps the data repeats as often as needed (HF semantics: max_steps overrides epochs).
        int epochs = _o.MaxSteps is int ms ? Math.Max(_o.Epochs, (int)Math.Ceiling((double)ms * _o.GradAccum / batchesPerEpoch)) : _o.Epochs;
        var schedule = new LearningRateSchedule(_o.LearningRate ?? info.DefaultLearningRate, _o.LrScheduler, _o.WarmupSteps, totalSteps);
        var step = new MethodStep(info.Method, policy, reference, _o.LogProb, objectives);
        var log = new MetricsLog(Path.Combine(_o.OutputDir, "metrics.jsonl"), checkpoint is null ? null : state.Step);

        _observer.Started(new TrainingPlan(info.Name, totalSteps, state.Step, batchesPerEpoch, _o.BatchSize, _o.GradAccum, data.Train.Rows,
            data.Eval?.Rows, reference switch { null => "none (reference-free)", CachedReference c => c.LoadedFromDisk ? "cached (loaded)" : "cached (pre-pass)", _ => "resident model" },
            _o.Precision.ToString(), _o.LogProb.ToString()));

        var clock = Stopwatch.StartNew();
        long tokensThisRun = 0;
        var position = new DataPosition(state.Epoch, state.BatchIndex);
        int consecutiveNonFinite = state.ConsecutiveNonFinite, skipped = state.SkippedSteps;
        long tokensSeen = state.TokensSeen;
        IReadOnlyDictionary<string, double> lastTrain = new Dictionary<string, double>();
        IReadOnlyDictionary<string, double>? lastEval = null;
        int stepIndex = state.Step;
        policy.train();
        using (var batches = TrainBatch.Enumerate(data.Train, epochs, position).GetEnumerator())
        {
            for (; stepIndex < totalSteps; stepIndex++)
            {
                var stepClock = Stopwatch.StartNew();
                var metrics = new ObjectiveMetrics();
                double lossSum = 0;
                int micro = 0;
                long tokens = 0;
                for (; micro < _o.GradAccum; micro++)
                {
                    if (!batches.MoveNext()) break;
                    using var batch = batches.Current;
                    using var scope = NewDisposeScope();
                    var result = step.Compute(batch, eval: false);
                    (result.Loss / _o.GradAccum).backward();
                    lossSum += result.Loss.item<float>();
                    metrics.Merge(result.Metrics);
                    tokens += batch.Tokens;
                    position = batch.Next;
                }
                if (micro == 0) break; // data exhausted
                double loss = lossSum / micro;
                double gradNorm = optimizer.ClipGradients(_o.MaxGradNorm);
                bool finite = double.IsFinite(loss) && double.IsFinite(gradNorm);
                double lr = schedule.At(stepIndex);
                if (finite)
                {
                    optimizer.Step(lr);
                    consecutiveNonFinite = 0;
                }
                else
                {
                    consecutiveNonFinite++;
                    skipped++;
                }
                optimizer.ZeroGrad();
                tokensSeen += tokens;
                tokensThisRun += tokens;

                var values = new Dictionary<string, double> { ["loss"] = loss };
                foreach (var name in metrics.Names) values[name] = metrics.Value(name);
                values["learning_rate"] = lr;
                values["grad_norm"] = gradNorm;
                values["epoch"] = position.Epoch + (double)position.BatchIndex / batchesPerEpoch;
                values["tokens_per_second"] = tokens / Math.Max(1e-9, stepClock.Elapsed.TotalSeconds);
                if (!finite) values["skipped"] = 1;
                log.Append(values, stepIndex + 1);
                lastTrain = values;
                var elapsed = clock.Elapsed;
                int done = stepIndex + 1 - state.Step;
                var remaining = TimeSpan.FromSeconds(elapsed.TotalSeconds / done * (totalSteps - stepIndex - 1));
                _observer.Step(new StepReport(stepIndex + 1, totalSteps, values, elapsed, remaining, !finite));

                if (consecutiveNonFinite >= _o.MaxConsecutiveNonFinite)
                    throw new EngineException($"stopped at step {stepIndex + 1}: {consecutiveNonFinite} consecutive steps had a non-finite loss or gradient " +
                        $"(loss {loss.ToString(CultureInfo.InvariantCulture)}, grad norm {gradNorm.ToString(CultureInfo.InvariantCulture)}); " +
                        "lower --lr, check the data, or use --precision f32. No final model was written.");

                if (data.Eval != null && _o.EvalSteps > 0 && (stepIndex + 1) % _o.EvalSteps == 0)
                    lastEval = EvaluateAndLog(step, data.Eval, log, stepIndex + 1);
                if (_o.SaveSteps > 0 && (stepIndex + 1) % _o.SaveSteps == 0)
                {
                    var saved = state with
                    {
                        Step = stepIndex + 1, Epoch = position.Epoch, BatchIndex = position.BatchIndex, OptimizerSteps = optimizer.StepCount,
                        ConsecutiveNonFinite = consecutiveNonFinite, SkippedSteps = skipped, TokensSeen = tokensSeen,
                    };
                    string dir = CheckpointStore.Save(_o.OutputDir, saved, policy, tokenizer, optimizer);
                    _observer.Notice($"checkpoint: {dir}");
                }
            }
        }

        if (data.Eval != null && (_o.EvalSteps <= 0 || stepIndex % _o.EvalSteps != 0))
            lastEval = EvaluateAndLog(step, data.Eval, log, stepIndex);
        string? finalDir = null;
        if (_o.SaveFinal)
        {
            finalDir = Path.Combine(_o.OutputDir, "final");
            var weights = optimizer.Slots.Where(s => s.Master is not null).ToDictionary(s => s.Name, s => s.Master!);
            ModelLoader.Save(policy, tokenizer, finalDir, weights.Count > 0 ? ScalarType.Float32 : policy.Dtype, replace: true,
                weightOverrides: weights);
        }
        var plots = _o.Plots ? MetricPlots.Write(log, _o.OutputDir) : new List<string>();
        var summary = new TrainingSummary(_o.OutputDir, finalDir, stepIndex, skipped, clock.Elapsed,
            tokensThisRun / Math.Max(1e-9, clock.Elapsed.TotalSeconds), lastTrain, lastEval, plots);
        _observer.Finished(summary);
        policy.Dispose();
        return summary;
    }

    void Validate(AlignmentMethodInfo info)
    {
        if (_o.BatchSize < 1) throw new EngineException($"--batch-size must be at least 1 (got {_o.BatchSize})");
        if (_o.GradAccum < 1) throw new EngineException($"--grad-accum must be at least 1 (got {_o.GradAccum})");
        if (_o.Epochs < 1) throw new EngineException($"--epochs must be at least 1 (got {_o.Epochs})");
        if (_o.MaxSteps is int s && s < 1) throw new EngineException($"--max-steps must be at least 1 (got {s})");
        if (_o.LearningRate is double lr && !(lr > 0 && double.IsFinite(lr))) throw new EngineException($"--lr must be positive (got {lr})");
        if (_o.WarmupSteps < 0) throw new EngineException($"--warmup-steps must be >= 0 (got {_o.WarmupSteps})");
        if (info.Method == AlignmentMethod.Kto && _o.BatchSize < 2)
            throw new EngineException("KTO needs --batch-size of at least 2: z0 is estimated from mismatched pairs within a microbatch, and a microbatch of 1 has none");
        if (!(_o.EvalFraction >= 0 && _o.EvalFraction < 1)) throw new EngineException($"--eval-fraction must be in [0, 1) (got {_o.EvalFraction})");
        if (_o.MaxConsecutiveNonFinite < 1) throw new EngineException("--max-nonfinite must be at least 1");
    }

    IReferenceLogps? OpenReference(AlignmentMethodInfo info, LlamaForCausalLM policy, bool resuming, RunData.Prepared data)
    {
        if (!AlignmentMethods.NeedsReferenceModel(info.Method, _o.ReferenceFree)) return null;
        string refPath = _o.ReferenceModelPath ?? _o.ModelPath;
        var dtype = ComputeDtype(_o.Precision);
        if (_o.ReferenceMode == ReferenceMode.Resident)
            return new ResidentReference(ModelLoader.Load(refPath, dtype).Model, _o.LogProb);
        string settings = string.Join("|", info.Name, _o.BatchSize, _o.Seed, _o.MaxLength, _o.MaxPromptLength, _o.TruncationMode,
            _o.EvalFraction.ToString(CultureInfo.InvariantCulture), _o.Precision, _o.LogProb);
        string key = CachedReference.Key(refPath, data.DataFiles, settings);
        // Before the first update the policy *is* the reference: the pre-pass reuses it and no second copy is loaded.
        bool policyIsReference = !resuming && _o.ReferenceModelPath is null;
        return CachedReference.LoadOrCompute(_o.OutputDir, key,
            () => policyIsReference ? (policy, false) : (ModelLoader.Load(refPath, dtype).Model, true),
            data.Train, data.Eval, _o.LogProb, _observer.Notice);
    }

    IReadOnlyDictionary<string, double> EvaluateAndLog(MethodStep step, RunBatches eval, MetricsLog log, int atStep)
    {
        var metrics = Evaluation.Run(step, eval);
        var prefixed = metrics.ToDictionary(kv => "eval_" + kv.Key, kv => kv.Value);
        log.Append(prefixed, atStep);
        _observer.Evaluated(atStep, metrics);
        return metrics;
    }
}
