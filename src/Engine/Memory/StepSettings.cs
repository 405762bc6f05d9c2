using Engine.Kernels;
using Engine.Training;

namespace Engine.Memory;

public enum PlanMethod { Dpo, Kto }

public enum MemoryDevice
{
    /// <summary>libtorch's CPU allocator: no context, no caching allocator.</summary>
    Cpu,
    /// <summary>A CUDA GPU: the context and the caching allocator's fragmentation are added (see <see cref="CudaAllowances"/>).</summary>
    Cuda,
}

/// <summary>One candidate configuration of a training step: everything that changes its memory.</summary>
public sealed record StepSettings
{
    public required PlanMethod Method { get; init; }
    public required int SeqLen { get; init; }
    /// <summary>Pairs per microbatch for DPO (2× rows go through the model), rows for KTO.</summary>
    public required int MicroBatch { get; init; }
    public Precision Precision { get; init; } = Precision.Bf16Mixed;
    public bool Bf16OptimizerStates { get; init; }
    public bool ActivationCheckpointing { get; init; }
    public LogProbMode Head { get; init; } = LogProbMode.Fused;
    public ReferenceMode Reference { get; init; } = ReferenceMode.Cached;
    /// <summary>Reference-free objectives (no reference log-probs at all).</summary>
    public bool ReferenceFree { get; init; }
    public MemoryDevice Device { get; init; } = MemoryDevice.Cuda;
    /// <summary>
    /// Fraction of the T−1 predicted positions per row that are completion tokens (rows through the LM head).
    /// 1 is the worst case (a one-token prompt) and the planner's default.
    /// </summary>
    public double CompletionFraction { get; init; } = 1.0;

    /// <summary>Rows in the policy's gradient forward: chosen + rejected for DPO.</summary>
    public int Rows => Method == PlanMethod.Dpo ? 2 * MicroBatch : MicroBatch;

    public string Describe() =>
        $"{(Method == PlanMethod.Dpo ? $"{MicroBatch} pairs" : $"{MicroBatch} rows")}, {PrecisionName(Precision)}" +
        $"{(Bf16OptimizerStates ? " + bf16 Adam states" : "")}, checkpointing {(ActivationCheckpointing ? "on" : "off")}, " +
        $"{Head.ToString().ToLowerInvariant()} head, {(ReferenceFree ? "no reference" : Reference == ReferenceMode.Cached ? "cached reference log-probs" : "resident reference model")}";

    public static string PrecisionName(Precision p) => p switch
    {
        Precision.F32 => "f32",
        Precision.Bf16Mixed => "bf16",
        _ => "bf16-pure",
    };
}
