using Engine.Objectives;
using Engine.Util;

namespace Engine.Training;

/// <summary>Where metrics go besides metrics.jsonl (TRL's report_to).</summary>
public enum ReportTarget
{
    [Spelling("none")] None,
    [Spelling("tensorboard")] TensorBoard,
}

/// <summary>
/// A training run: the step it repeats (<see cref="StepSettings"/>), its data and output, the optimizer and schedule,
/// and the run's cadence. The CLI's train options and the TOML config keys are declared against this record.
/// </summary>
public sealed record TrainingOptions
{
    public StepSettings Step { get; init; } = new();
    public string DataPath { get; init; } = "";
    public string OutputDir { get; init; } = "";
    public string? EvalDataPath { get; init; }
    /// <summary>Fraction of the training file held out for eval when no eval file is given (0 = none).</summary>
    public double EvalFraction { get; init; }

    /// <summary>AdamW's learning rate; null: the method's default.</summary>
    public double? LearningRate { get; init; }
    public int GradAccum { get; init; } = 1;
    public int? MaxSteps { get; init; }
    public int Epochs { get; init; } = 1;
    public LrSchedulerKind LrScheduler { get; init; } = LrSchedulerKind.Linear;
    public int WarmupSteps { get; init; }
    public double WeightDecay { get; init; }
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Data-parallel runs: MiB of fp32 gradients per all-reduce bucket (HF's ddp_bucket_cap_mb).</summary>
    public double DdpBucketCapMb { get; init; } = Distributed.GradientBuckets.DefaultCapBytes / 1048576.0;

    public int SaveSteps { get; init; }
    public int EvalSteps { get; init; }
    /// <summary>Steps averaged into one metrics row (TRL's logging_steps); 1 keeps a row per step.</summary>
    public int LoggingSteps { get; init; } = 1;
    public ReportTarget ReportTo { get; init; } = ReportTarget.None;
    /// <summary>Keep at most this many checkpoints (HF's save_total_limit); null keeps all.</summary>
    public int? SaveTotalLimit { get; init; }
    /// <summary>The eval metric that picks the best checkpoint, kept by <see cref="SaveTotalLimit"/> (HF's metric_for_best_model).</summary>
    public string? MetricForBestModel { get; init; }
    /// <summary>Null: HF's default, true unless the metric's name ends in "loss".</summary>
    public bool? GreaterIsBetter { get; init; }
    /// <summary>Remove a previous run's outputs from <see cref="OutputDir"/> instead of refusing to start.</summary>
    public bool OverwriteOutputDir { get; init; }
    public long Seed { get; init; } = 42;
    public string? ResumeFrom { get; init; }
    /// <summary>Stop after this many consecutive steps with a non-finite loss or gradient.</summary>
    public int MaxConsecutiveNonFinite { get; init; } = 5;
    /// <summary>Write the final model to OUT/final (off for throwaway runs such as measurements).</summary>
    public bool SaveFinal { get; init; } = true;
    public bool Plots { get; init; } = true;
    /// <summary>Split each training step's time by op class (<see cref="Engine.Kernels.StepProfiler"/>); the summary carries ms per step.</summary>
    public bool Profile { get; init; }

    public double EffectiveLearningRate => LearningRate ?? Step.Method.DefaultLearningRate;

    public void Validate()
    {
        if (string.IsNullOrEmpty(Step.Model)) throw new EngineException("--model is required");
        if (string.IsNullOrEmpty(DataPath)) throw new EngineException("--data is required");
        if (string.IsNullOrEmpty(OutputDir)) throw new EngineException("--out is required");
        Step.Validate();
        if (GradAccum < 1) throw new EngineException($"--grad-accum must be at least 1 (got {GradAccum})");
        if (Epochs < 1) throw new EngineException($"--epochs must be at least 1 (got {Epochs})");
        if (MaxSteps is int s && s < 1) throw new EngineException($"--max-steps must be at least 1 (got {s})");
        if (LearningRate is double lr && !(lr > 0 && double.IsFinite(lr))) throw new EngineException($"--lr must be positive (got {lr})");
        if (WarmupSteps < 0) throw new EngineException($"--warmup-steps must be >= 0 (got {WarmupSteps})");
        if (!(EvalFraction >= 0 && EvalFraction < 1)) throw new EngineException($"--eval-fraction must be in [0, 1) (got {EvalFraction})");
        if (MaxConsecutiveNonFinite < 1) throw new EngineException("--max-nonfinite must be at least 1");
        if (!(DdpBucketCapMb > 0) || !double.IsFinite(DdpBucketCapMb)) throw new EngineException($"--ddp-bucket-cap-mb must be positive (got {DdpBucketCapMb})");
        if (LoggingSteps < 1) throw new EngineException($"--logging-steps must be at least 1 (got {LoggingSteps})");
        if (SaveTotalLimit is int limit && limit < 1) throw new EngineException($"--save-total-limit must be at least 1 (got {limit})");
        if (OverwriteOutputDir && ResumeFrom is not null)
            throw new EngineException("--overwrite-output-dir and --resume contradict each other: --resume continues the run in the folder, --overwrite-output-dir replaces it");
        if (GreaterIsBetter is not null && MetricForBestModel is null) throw new EngineException("--greater-is-better goes with --metric-for-best-model");
        if (MetricForBestModel is not null) BestCheckpointMetric.Validate(this);
    }
}
