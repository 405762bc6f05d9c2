using Engine.Data;
using Engine.Kernels;
using Engine.Models;
using Engine.Objectives;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Memory;

/// <summary>Measured memory of real training steps on the CPU, next to what <see cref="StepMemoryModel"/> predicts.</summary>
/// <param name="PeakBytes">the step's own peak: weights + optimizer (+ reference) + gradients + the step's rise above the level before it</param>
/// <param name="WeightsBytes">measured when the model is built (bf16: after the cast; the fp32 masters are not counted here)</param>
/// <param name="OptimizerAndReferenceBytes">measured when AdamW (fp32 masters, moments) and a resident reference are built</param>
/// <param name="GradientsBytes">the .grad tensors the first step allocated (their sizes)</param>
/// <param name="RuntimeWorkspaceBytes">what else the first step left allocated: BLAS/oneDNN buffers and caches of the
/// libraries, not the step's tensors (reported, not counted)</param>
/// <param name="StepDynamicBytes">the median over the repeats of the rise above the level right before a step</param>
public sealed record StepMeasurementResult(long PeakBytes, long WeightsBytes, long OptimizerAndReferenceBytes, long GradientsBytes,
    long RuntimeWorkspaceBytes, long StepDynamicBytes, double StepSeconds, int Repeats);

/// <summary>
/// Runs real training steps of Engine's own code path (the same objects AlignmentTrainer builds: MethodStep on the
/// policy, AdamW with fp32 masters or bf16 moments, ActivationCheckpointing, ResidentReference; then backward,
/// ClipGradients, Step, ZeroGrad) on a synthetic batch of the planned shape, and samples the process allocator
/// (<see cref="HostAllocatorProbe"/>) throughout. Bytes are counted from a baseline taken before the model is built,
/// so the runtime's own memory is excluded and the model, optimizer and gradients are measured, not assumed.
/// Cached reference log-probs are stood in for by zeros of the same shape (a few floats per row, as in
/// CachedReference); the pre-pass that fills the real cache is not part of a step.
/// </summary>
public static class StepMeasurement
{
    sealed class ZeroReference : IReferenceLogps
    {
        public (Tensor Chosen, Tensor Rejected) Paired(PairedBatch batch, bool eval) => (zeros(batch.Pairs), zeros(batch.Pairs));
        public Tensor Completions(UnpairedBatch batch, bool eval) => zeros(batch.Rows);
        public Tensor Mismatched(UnpairedBatch batch, bool eval) => zeros(batch.Rows);
        public void Dispose() { }
    }

    /// <param name="modelPath">a model folder to load, or null for random weights of <paramref name="config"/></param>
    /// <param name="repeats">measured steps after two warm-up steps (the median rise is kept)</param>
    public static StepMeasurementResult Run(LlamaConfig config, string? modelPath, StepSettings settings, int repeats = 3, long seed = 7)
    {
        if (settings.Device != MemoryDevice.Cpu)
        {
            if (!cuda.is_available())
                throw new EngineException("--measure on CUDA needs a GPU and TorchSharp's CUDA build; this build runs on the CPU " +
                    (GpuMemoryProbe.IsAvailable ? "" : $"({GpuMemoryProbe.UnavailableReason})") + ". Measure with --device cpu.");
            throw new EngineException("--measure on CUDA is not implemented in this CPU build; measure with --device cpu");
        }
        if (HostAllocatorProbe.UnavailableReason is string reason) throw new EngineException(reason);
        if (repeats < 1) throw new EngineException($"--repeats must be at least 1 (got {repeats})");
        var method = settings.Method == PlanMethod.Dpo ? AlignmentMethod.Dpo : AlignmentMethod.Kto;
        var info = AlignmentMethods.Info(method);
        var options = new TrainingOptions
        {
            Method = info.Name, ModelPath = modelPath ?? "", DataPath = "", OutputDir = "", ReferenceFree = settings.ReferenceFree,
            Precision = settings.Precision, ActivationCheckpointing = settings.ActivationCheckpointing, LogProb = settings.Head,
            ReferenceMode = settings.Reference, BatchSize = settings.MicroBatch,
        };
        var objectives = ObjectiveSettings.From(options, info);
        var dtype = AlignmentTrainer.ComputeDtype(settings.Precision);
        manual_seed(seed);

        Collect();
        long start = HostAllocatorProbe.InUseBytes();
        var policy = BuildModel(config, modelPath, ScalarType.Float32, seed);
        Dictionary<string, Tensor>? masters = null;
        if (settings.Precision == Precision.Bf16Mixed)
            masters = policy.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        policy.ConvertTo(dtype);
        if (settings.ActivationCheckpointing) ActivationCheckpointing.Enable(policy);
        Collect();
        long afterWeights = HostAllocatorProbe.InUseBytes() - (masters?.Values.Sum(m => m.numel() * 4) ?? 0);

        IReferenceLogps? reference = settings.ReferenceFree ? null
            : settings.Reference == ReferenceMode.Resident ? new ResidentReference(BuildModel(config, modelPath, dtype, seed), settings.Head)
            : new ZeroReference();
        var optimizer = new AdamW(policy.named_parameters().Select(p => (p.name, p.parameter)),
            stateDtype: settings.Bf16OptimizerStates ? ScalarType.BFloat16 : ScalarType.Float32,
            masters: masters, masterWeights: settings.Precision != Precision.Bf16Pure);
        if (masters != null) foreach (var m in masters.Values) m.Dispose();
        Collect();
        long afterOptimizer = HostAllocatorProbe.InUseBytes();

        var step = new MethodStep(method, policy, reference, settings.Head, objectives);
        var rng = new Random((int)seed);
        try
        {
            policy.train();
            // Two warm-up steps: the first allocates the gradients, both let the libraries create their one-time
            // state (BLAS buffers, oneDNN primitives, thread-pool scratch) before anything is counted.
            RunStep(step, optimizer, settings, config, rng);
            RunStep(step, optimizer, settings, config, rng);
            Collect();
            long between = HostAllocatorProbe.InUseBytes();
            long gradients = policy.parameters().Sum(p => p.grad is { } g ? g.numel() * g.element_size() : 0);
            var rises = new List<long>();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            for (int r = 0; r < repeats; r++)
            {
                Collect();
                long before = HostAllocatorProbe.InUseBytes();
                long peak = HostAllocatorProbe.PeakDuring(() => RunStep(step, optimizer, settings, config, rng));
                rises.Add(peak - before);
            }
            // The median step: a late one-time library allocation inflates one step, a peak the sampler missed
            // deflates one; neither moves the median of three.
            rises.Sort();
            long dynamic = rises[rises.Count / 2];
            double seconds = clock.Elapsed.TotalSeconds / repeats;
            long weights = afterWeights - start, optimizerAndReference = afterOptimizer - afterWeights;
            return new StepMeasurementResult(weights + optimizerAndReference + gradients + dynamic, weights, optimizerAndReference, gradients,
                Math.Max(0, between - afterOptimizer - gradients), dynamic, seconds, repeats);
        }
        finally
        {
            optimizer.Dispose();
            reference?.Dispose();
            policy.Dispose();
        }
    }

    static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    static LlamaForCausalLM BuildModel(LlamaConfig config, string? path, ScalarType dtype, long seed)
    {
        if (path != null) return ModelLoader.Load(path, dtype).Model;
        var model = new LlamaForCausalLM(config, ScalarType.Float32);
        model.InitializeWeights(seed);
        model.ConvertTo(dtype);
        return model;
    }

    /// <summary>One microstep and update, as AlignmentTrainer runs them (gradient accumulation of 1).</summary>
    static void RunStep(MethodStep step, AdamW optimizer, StepSettings s, LlamaConfig c, Random rng)
    {
        using (var batch = SyntheticBatch(s, c, rng))
        using (var scope = NewDisposeScope())
        {
            var result = step.Compute(batch, eval: false);
            result.Loss.backward();
            _ = result.Loss.item<float>();
        }
        optimizer.ClipGradients(1.0);
        optimizer.Step(1e-6);
        optimizer.ZeroGrad();
    }

    /// <summary>
    /// A batch of the planned shape: a one-token prompt and a completion filling the rest of the sequence (every
    /// predicted position goes through the head, the planner's worst case), random ids.
    /// </summary>
    static TrainBatch SyntheticBatch(StepSettings s, LlamaConfig c, Random rng)
    {
        int[] Completion() => Enumerable.Range(0, s.SeqLen - 1).Select(_ => rng.Next(3, c.VocabSize)).ToArray();
        var prompt = new[] { c.BosTokenId ?? 1 };
        if (s.Method == PlanMethod.Dpo)
        {
            var pairs = Enumerable.Range(0, s.MicroBatch).Select(_ => new TokenizedPair(prompt, Completion(), Completion())).ToList();
            var batch = new PairedBatchIterator(pairs, s.MicroBatch, 0, 0, shuffle: false).Batches(1).First();
            return new TrainBatch { Paired = batch, Next = batch.Next };
        }
        var rows = Enumerable.Range(0, s.MicroBatch).Select(i => new TokenizedUnpaired(prompt, Completion(), i % 2 == 0)).ToList();
        var unpaired = new UnpairedBatchIterator(rows, s.MicroBatch, 0, 0, s.SeqLen, shuffle: false).Batches(1).First();
        return new TrainBatch { Unpaired = unpaired, Next = unpaired.Next };
    }
}
