using Engine.Kernels;

namespace Engine.Training;

public enum ReferenceMode
{
    /// <summary>Reference log-probs computed in one pre-pass and cached beside the run; no reference weights while training.</summary>
    Cached,
    /// <summary>A frozen reference model stays in memory and is run on every batch.</summary>
    Resident,
}

public enum Precision
{
    F32,
    /// <summary>bf16 compute with fp32 master weights, optimizer state, loss and logsumexp.</summary>
    Bf16Mixed,
    /// <summary>bf16 weights updated directly (no fp32 master copy): least memory, least accurate.</summary>
    Bf16Pure,
}

/// <summary>Everything a training run is configured by; CLI flags and TOML config keys map onto these one to one.</summary>
public sealed record TrainingOptions
{
    public required string Method { get; init; }
    public required string ModelPath { get; init; }
    public required string DataPath { get; init; }
    public required string OutputDir { get; init; }
    public string? EvalDataPath { get; init; }
    /// <summary>Fraction of the training file held out for eval when no eval file is given (0 = none).</summary>
    public double EvalFraction { get; init; }
    public string? ReferenceModelPath { get; init; }
    public ReferenceMode ReferenceMode { get; init; } = ReferenceMode.Cached;

    public double? Beta { get; init; }
    public double? LearningRate { get; init; }
    public string? LossType { get; init; }
    public double LabelSmoothing { get; init; }
    public double? RpoAlpha { get; init; }
    public bool ReferenceFree { get; init; }
    /// <summary>KTO ablation: z0 fixed at 0.</summary>
    public bool NoZ0 { get; init; }
    public double DesirableWeight { get; init; } = 1.0;
    public double UndesirableWeight { get; init; } = 1.0;
    /// <summary>SimPO's target margin γ.</summary>
    public double? SimpoGamma { get; init; }

    public int BatchSize { get; init; } = 4;
    public int GradAccum { get; init; } = 1;
    public int? MaxSteps { get; init; }
    public int Epochs { get; init; } = 1;
    public LrSchedulerKind LrScheduler { get; init; } = LrSchedulerKind.Linear;
    public int WarmupSteps { get; init; }
    public double WeightDecay { get; init; }
    public double MaxGradNorm { get; init; } = 1.0;
    public int SaveSteps { get; init; }
    public int EvalSteps { get; init; }
    public int LoggingSteps { get; init; } = 1;
    public long Seed { get; init; } = 42;
    public string? ResumeFrom { get; init; }

    public int MaxLength { get; init; } = 512;
    public int? MaxPromptLength { get; init; }
    public string TruncationMode { get; init; } = "keep_end";

    public LogProbMode LogProb { get; init; } = LogProbMode.Fused;
    public Precision Precision { get; init; } = Precision.F32;
    public bool ActivationCheckpointing { get; init; }
    /// <summary>AdamW moments in bf16 instead of fp32 (halves their memory; see docs/memory.md).</summary>
    public bool Bf16OptimizerStates { get; init; }
    /// <summary>Stop after this many consecutive steps with a non-finite loss or gradient.</summary>
    public int MaxConsecutiveNonFinite { get; init; } = 5;
    /// <summary>Write the final model to OUT/final (off for throwaway runs such as measurements).</summary>
    public bool SaveFinal { get; init; } = true;
    public bool Plots { get; init; } = true;
}
