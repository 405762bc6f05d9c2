using Engine.Kernels;
using Engine.Methods;
using Engine.Training;
using Engine.Util;

namespace Engine.Memory;

public enum MemoryDevice
{
    /// <summary>libtorch's CPU allocator: no context, no caching allocator.</summary>
    [Spelling("cpu")] Cpu,
    /// <summary>A CUDA GPU: the context and the caching allocator's fragmentation are added (see <see cref="CudaAllowances"/>).</summary>
    [Spelling("cuda")] Cuda,
}

/// <summary>
/// A training step as the memory and throughput models see it: the step's own settings, the device it runs on, and
/// how much of each sequence is completion (what goes through the LM head). Sequences are taken at their full
/// <see cref="StepSettings.MaxLength"/>, the worst case.
/// </summary>
/// <param name="CompletionFraction">Fraction of the T−1 predicted positions per row that are completion tokens. 1 is
/// the worst case (a one-token prompt) and the planner's default.</param>
public sealed record PlannedStep(StepSettings Step, MemoryDevice Device = MemoryDevice.Cuda, double CompletionFraction = 1.0)
{
    public int SeqLen => Step.MaxLength;
    public int MicroBatch => Step.MicroBatch;
    /// <summary>Rows in the policy's gradient forward (chosen + rejected for paired methods).</summary>
    public int Rows => Step.PolicyRows;
    public MethodCost Cost => Step.Cost;
    public Precision Precision => Step.Precision;
    public bool Bf16OptimizerStates => Step.Bf16OptimizerStates;
    public bool ActivationCheckpointing => Step.ActivationCheckpointing;
    public LogProbMode Head => Step.Head;
    public Engine.Kernels.KernelChoice Kernels => Step.Kernels;
    public ReferenceMode Reference => Step.Reference;
    public bool ReferenceFree => !Step.UsesReference;

    public string Describe() => Step.Describe();
}
