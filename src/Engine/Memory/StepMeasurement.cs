using Engine.Data;
using Engine.Models;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Memory;

/// <summary>Measured memory of real training steps on the CPU, next to what <see cref="StepMemoryModel"/> predicts.</summary>
/// <param name="PeakBytes">the step's own peak: weights + optimizer (+ reference) + gradients + the step's rise above the level before it</param>
/// <param name="WeightsBytes">measured when the model is built (bf16: after the cast; the fp32 masters are not counted here)</param>
/// <param name="OptimizerAndReferenceBytes">measured when AdamW (fp32 masters, moments) and a resident reference are built</param>
/// <param name="GradientsBytes">the .grad tensors the first step allocated (their sizes)</param>
/// <param name="RuntimeWorkspaceBytes">what else was left allocated before the measured steps: BLAS/oneDNN buffers and
/// caches of the libraries, the cached reference's pre-pass leftovers, not the step's tensors (reported, not counted)</param>
/// <param name="StepDynamicBytes">the median over the repeats of the rise above the level right before a step</param>
public sealed record StepMeasurementResult(long PeakBytes, long WeightsBytes, long OptimizerAndReferenceBytes, long GradientsBytes,
    long RuntimeWorkspaceBytes, long StepDynamicBytes, double StepSeconds, int Repeats);

/// <summary>
/// Runs real training steps through <see cref="TrainingSession"/> — the code `train` runs — on random-token batches of
/// the planned shape (a one-token prompt and a completion filling the rest: every predicted position goes through the
/// head, the planner's worst case), and samples the process allocator (<see cref="HostAllocatorProbe"/>) throughout.
/// Bytes are counted from a baseline taken before the model is built, so the runtime's own memory is excluded and the
/// model, optimizer and gradients are measured, not assumed.
/// </summary>
public static class StepMeasurement
{
    const int WarmupSteps = 2;

    sealed class Probe : ISessionProbe
    {
        public long Start, AfterWeights, AfterOptimizer, AfterReference;
        public void ModelBuilt(long masterWeightBytes) { Collect(); AfterWeights = HostAllocatorProbe.InUseBytes() - masterWeightBytes; }
        public void OptimizerBuilt() { Collect(); AfterOptimizer = HostAllocatorProbe.InUseBytes(); }
        public void ReferenceBuilt() { Collect(); AfterReference = HostAllocatorProbe.InUseBytes(); }

        /// <summary>The highest level seen right before a backward since the last reset: a floor under the step's peak that
        /// does not depend on the sampler thread being scheduled at the peak's moment.</summary>
        public long BeforeBackwardLevel;
        public void BeforeBackward() => BeforeBackwardLevel = Math.Max(BeforeBackwardLevel, HostAllocatorProbe.InUseBytes());
    }

    /// <param name="planned">the step; its model is a folder, GGUF file or preset (random weights)</param>
    /// <param name="repeats">measured steps after two warm-up steps (the median rise is kept)</param>
    public static StepMeasurementResult Run(LlamaConfig config, PlannedStep planned, int repeats = 3, long seed = 7)
    {
        if (planned.Device != MemoryDevice.Cpu)
        {
            if (!cuda.is_available())
                throw new EngineException("--measure on CUDA needs a GPU and TorchSharp's CUDA build; this build runs on the CPU " +
                    (GpuMemoryProbe.IsAvailable ? "" : $"({GpuMemoryProbe.UnavailableReason})") + ". Measure with --device cpu.");
            throw new EngineException("--measure on CUDA is not implemented in this CPU build; measure with --device cpu");
        }
        if (HostAllocatorProbe.UnavailableReason is string reason) throw new EngineException(reason);
        if (repeats < 1) throw new EngineException($"--repeats must be at least 1 (got {repeats})");
        var step = planned.Step;
        var shape = new SyntheticShape(step.MicroBatch, PromptTokens: 1, CompletionTokens: step.MaxLength - 1, config.VocabSize,
            FirstToken: config.BosTokenId ?? 1, Batches: WarmupSteps + repeats, seed);
        var options = new TrainingOptions { Step = step, Seed = seed, SaveFinal = false, Plots = false };

        var probe = new Probe();
        WarmRandomGenerators();
        Collect();
        probe.Start = HostAllocatorProbe.InUseBytes();
        using var session = TrainingSession.Open(options, new SessionData.Synthetic(shape), SilentObserver.Instance, probe: probe);
        // A resident reference is the model's weights again; a cached one leaves only library workspace behind.
        long referenceBytes = step.UsesReference && step.Reference == ReferenceMode.Resident ? probe.AfterReference - probe.AfterOptimizer : 0;
        using var batches = session.Train.Batches(1, DataPosition.Start).GetEnumerator();
        void RunStep() => session.TrainStep(batches, gradAccum: 1, learningRate: 1e-6);

        // Two warm-up steps: the first allocates the gradients, both let the libraries create their one-time state
        // (BLAS buffers, oneDNN primitives, thread-pool scratch) before anything is counted.
        for (int i = 0; i < WarmupSteps; i++) RunStep();
        Collect();
        long between = HostAllocatorProbe.InUseBytes();
        // The trainable parameters' gradients: every weight's, or (LoRA) the adapters', which are not modules of the policy.
        var trainable = session.Adapters?.NamedParameters().Select(p => p.Parameter) ?? session.Policy.parameters();
        long gradients = trainable.Sum(p => p.grad is { } g ? g.numel() * g.element_size() : 0);
        var rises = new List<long>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int r = 0; r < repeats; r++)
        {
            Collect();
            long before = HostAllocatorProbe.InUseBytes();
            probe.BeforeBackwardLevel = 0;
            // The sampler thread can miss a brief peak when the step's threads hold both cores (a fresh-clone CI run once
            // measured 0.89 of the prediction, where other runs measure 0.95–0.97); the level right before backward is
            // taken on the step's own thread.
            long peak = Math.Max(HostAllocatorProbe.PeakDuring(RunStep), probe.BeforeBackwardLevel);
            rises.Add(peak - before);
        }
        // The median step: a late one-time library allocation inflates one step, a peak the sampler missed deflates
        // one; neither moves the median of three.
        rises.Sort();
        long dynamic = rises[rises.Count / 2];
        double seconds = clock.Elapsed.TotalSeconds / repeats;
        long weights = probe.AfterWeights - probe.Start;
        long optimizerAndReference = probe.AfterOptimizer - probe.AfterWeights + referenceBytes;
        long accounted = probe.Start + weights + optimizerAndReference + gradients;
        return new StepMeasurementResult(weights + optimizerAndReference + gradients + dynamic, weights, optimizerAndReference, gradients,
            Math.Max(0, between - accounted), dynamic, seconds, repeats);
    }

    /// <summary>
    /// The first seeded random draw makes libtorch set up its one-time random state (about 55 MB on this CPU, measured);
    /// LoRA's adapter initialisation is the first such draw, so without this the state would be counted as weights.
    /// </summary>
    static void WarmRandomGenerators()
    {
        using var generator = new Generator(1);
        using var draw = rand(new long[] { 1 }, generator: generator);
    }

    static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
