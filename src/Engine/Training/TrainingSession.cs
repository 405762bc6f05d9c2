using Engine.Adapters;
using Engine.Kernels;
using Engine.Kernels.Autograd;
using Engine.Data;
using Engine.Distributed;
using Engine.Methods;
using Engine.Models;
using Engine.Objectives;
using Engine.Tokenization;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>Where a session's batches come from.</summary>
public abstract record SessionData
{
    /// <summary>The run's data files (<see cref="TrainingOptions.DataPath"/>, eval split), through the model's tokenizer.</summary>
    public sealed record Files : SessionData;
    /// <summary>Random-token batches of a planned shape (memory measurement, benchmarks): no files, no tokenizer.</summary>
    public sealed record Synthetic(SyntheticShape Shape) : SessionData;
}

/// <summary>Callbacks at the points where a measurement reads the allocator while a session is built.</summary>
public interface ISessionProbe
{
    /// <param name="masterWeightBytes">bytes of the transient fp32 copies taken for mixed precision (counted with the optimizer)</param>
    void ModelBuilt(long masterWeightBytes);
    void OptimizerBuilt();
    /// <summary>After the reference: a resident model's weights, or what the cached pre-pass left behind.</summary>
    void ReferenceBuilt();
    /// <summary>Right before each micro-batch's backward, when the forward's saved activations are all alive.</summary>
    void BeforeBackward() { }
}

/// <summary>One optimizer step's result, over every rank of a data-parallel run (tokens and metrics summed over ranks).</summary>
public sealed record StepOutcome(double Loss, ObjectiveMetrics Metrics, double GradNorm, bool Finite, long Tokens, int MicroBatches, DataPosition Next);

/// <summary>
/// One training session: builds the policy (precision, checkpointing), the data as the method's batches, the reference
/// (cached pre-pass or resident model) and AdamW, then runs optimizer steps. The trainer, `plan --measure` and
/// `bench train` all run their steps through this type, so they measure the code that `train` runs. On a data-parallel
/// run (<see cref="Ranks"/> of more than one process) every rank holds the same model and optimizer, trains on its shard
/// of each global micro-batch, and sums its weighted gradients with the others' in fp32 buckets before clipping.
/// </summary>
public sealed class TrainingSession : IDisposable
{
    public TrainingOptions Options { get; }
    public StepSettings Settings => Options.Step;
    public LlamaForCausalLM Policy { get; }
    public TextTokenizer? Tokenizer { get; }
    public AdamW Optimizer { get; }
    public IReferenceLogps? Reference { get; }
    public IMethodStep Step { get; }
    public IBatchSource<ITrainBatch> Train { get; }
    public IBatchSource<ITrainBatch>? Eval { get; }
    public IReadOnlyList<string> DataFiles { get; }
    public ICommunicator Ranks { get; }
    /// <summary>The gradient all-reduce of a data-parallel run; null on one rank.</summary>
    public GradientBuckets? Gradients { get; }

    /// <summary>The trained LoRA adapters on the frozen policy; null for full fine-tuning.</summary>
    public LoraAdapters? Adapters { get; }

    readonly ISessionProbe? _probe;

    TrainingSession(TrainingOptions options, LlamaForCausalLM policy, TextTokenizer? tokenizer, AdamW optimizer, IReferenceLogps? reference,
        IBatchSource<ITrainBatch> train, IBatchSource<ITrainBatch>? eval, IReadOnlyList<string> dataFiles, ICommunicator ranks, LoraAdapters? adapters,
        ISessionProbe? probe)
    {
        Options = options; Policy = policy; Tokenizer = tokenizer; Optimizer = optimizer; Reference = reference; Adapters = adapters;
        Train = train; Eval = eval; DataFiles = dataFiles; Ranks = ranks; _probe = probe;
        Step = options.Step.Method.CreateStep(options.Step.Objective, new StepContext(policy, reference, options.Step.Head) { Ranks = ranks });
        if (ranks.Size > 1)
        {
            Gradients = new GradientBuckets(ranks, optimizer.Slots.Select(s => ((Tensor)s.Parameter, LayerOf(s.Name))),
                (long)(options.DdpBucketCapMb * 1048576));
            SignalLayers(policy, Gradients);
        }
    }

    /// <summary>The decoder layer a parameter belongs to (its gradient is final once backward has passed that layer); −1 for the rest.</summary>
    internal static int LayerOf(string name)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return -1;
        int end = name.IndexOf('.', prefix.Length);
        return end > 0 && int.TryParse(name.AsSpan(prefix.Length, end - prefix.Length), out int layer) ? layer : -1;
    }

    /// <summary>
    /// Marks each decoder layer's input so that, in the backward of a step's last micro-batch, the buckets holding that
    /// layer's gradients start their all-reduce while backward goes on through the layers below.
    /// </summary>
    internal static void SignalLayers(LlamaForCausalLM policy, GradientBuckets buckets)
    {
        var index = new Dictionary<DecoderLayer, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < policy.model.layers.Count; i++) index[policy.model.layers[i]] = i;
        var inner = policy.LayerRunner;
        policy.LayerRunner = (layer, x, rope, mask, cache) =>
        {
            if (buckets.Armed && cache is null && is_grad_enabled())
            {
                int i = index[layer];
                x = BackwardSignal.Attach(x, () => buckets.StageDone(i));
            }
            return inner is null ? layer.Forward(x, rope, mask, cache) : inner(layer, x, rope, mask, cache);
        };
    }

    /// <summary>How the reference log-probs are obtained, for the run's start line.</summary>
    public string ReferenceHandling => Reference switch
    {
        null => "none (reference-free)",
        CachedReference c => c.LoadedFromDisk ? "cached (loaded)" : "cached (pre-pass)",
        AdapterOffReference => "resident (the policy with its adapters off)",
        _ => "resident model",
    };

    /// <param name="checkpoint">resume from this checkpoint folder (its model and optimizer state)</param>
    /// <param name="ranks">the ranks of a data-parallel run (every rank opens the same session); one process by default</param>
    public static TrainingSession Open(TrainingOptions o, SessionData data, ITrainingObserver observer,
        string? checkpoint = null, TrainerState? state = null, ISessionProbe? probe = null, ICommunicator? ranks = null)
    {
        ranks ??= SingleProcess.Instance;
        var s = o.Step;
        s.Validate();
        manual_seed(o.Seed);
        bool synthetic = data is SessionData.Synthetic;
        // With LoRA the base always comes from --model; a checkpoint holds only the adapter.
        var (policy, tokenizer) = LoadPolicy(checkpoint is null || s.Lora.Enabled ? s.Model : CheckpointStore.ModelDir(checkpoint), ScalarType.Float32,
            requireTokenizer: !synthetic, o.Seed);
        AdamW? optimizer = null;
        IReferenceLogps? reference = null;
        LoraAdapters? adapters = null;
        try
        {
            if (s.Lora.Enabled) adapters = checkpoint is null ? LoraAdapters.Attach(policy, s.Lora, o.Seed) : CheckpointStore.LoadAdapters(checkpoint, policy, s.Lora);
            var trainable = () => adapters?.NamedParameters() ?? policy.named_parameters().Select(p => (p.name, p.parameter));
            // Mixed precision: fp32 master copies are taken before the cast, so they hold the checkpoint's exact values.
            Dictionary<string, Tensor>? masters = null;
            if (s.Precision == Precision.Bf16Mixed)
                masters = trainable().ToDictionary(p => p.Item1, p => p.Item2.detach().clone());
            policy.ConvertTo(s.Dtype);
            policy.Kernels = s.Kernels;
            if (adapters != null)
            {
                adapters.ConvertTo(s.Dtype);
                LoraAdapters.Freeze(policy);
                // QLoRA: the frozen base is quantized from the cast weights before the reference is built, so the
                // reference (adapters off) is the quantized base too.
                adapters.QuantizeBase();
            }
            if (s.ActivationCheckpointing) ActivationCheckpointing.Enable(policy, replayRandomness: adapters != null && s.Lora.Dropout > 0);
            probe?.ModelBuilt(masters?.Values.Sum(m => m.numel() * 4) ?? 0);

            IBatchSource<ITrainBatch> train;
            IBatchSource<ITrainBatch>? eval = null;
            IReadOnlyList<string> files = Array.Empty<string>();
            if (data is SessionData.Synthetic syn) train = s.Method.Synthetic(syn.Shape);
            else
            {
                var prepared = RunData.Prepare(o, tokenizer!, new DataShard(ranks.Rank, ranks.Size));
                foreach (var n in prepared.Notices) observer.Notice(n);
                train = prepared.Train.Batches;
                eval = prepared.Eval?.Batches;
                files = prepared.DataFiles;
            }

            optimizer = new AdamW(trainable(), weightDecay: o.WeightDecay,
                stateDtype: s.Bf16OptimizerStates ? ScalarType.BFloat16 : ScalarType.Float32,
                masters: masters, masterWeights: s.Precision != Precision.Bf16Pure, kernel: s.EffectiveOptimizerKernel);
            if (masters != null) foreach (var m in masters.Values) m.Dispose();
            if (checkpoint != null) CheckpointStore.LoadOptimizer(checkpoint, optimizer, state ?? CheckpointStore.ReadState(checkpoint));
            probe?.OptimizerBuilt();
            reference = OpenReference(o, policy, adapters, resuming: checkpoint != null, synthetic ? null : o.OutputDir, train, eval, files, observer, ranks);
            probe?.ReferenceBuilt();
            return new TrainingSession(o, policy, tokenizer, optimizer, reference, train, eval, files, ranks, adapters, probe);
        }
        catch
        {
            optimizer?.Dispose();
            reference?.Dispose();
            adapters?.Dispose();
            policy.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A model folder or GGUF file, or a preset name (random weights from <paramref name="seed"/>) where no tokenizer
    /// is needed.
    /// </summary>
    public static (LlamaForCausalLM Model, TextTokenizer? Tokenizer) LoadPolicy(string model, ScalarType dtype, bool requireTokenizer, long seed)
    {
        if (!requireTokenizer && !File.Exists(model) && !Directory.Exists(model) && ModelPresets.All.TryGetValue(model, out var preset))
        {
            var random = new LlamaForCausalLM(preset, ScalarType.Float32);
            random.InitializeWeights(seed);
            random.ConvertTo(dtype);
            return (random, null);
        }
        var loaded = ModelLoader.Load(model, dtype, requireTokenizer);
        return (loaded.Model, loaded.Tokenizer);
    }

    static LlamaForCausalLM WithKernels(LlamaForCausalLM model, KernelChoice kernels)
    {
        model.Kernels = kernels;
        return model;
    }

    static IReferenceLogps? OpenReference(TrainingOptions o, LlamaForCausalLM policy, LoraAdapters? adapters, bool resuming, string? cacheDirectory,
        IBatchSource<ITrainBatch> train, IBatchSource<ITrainBatch>? eval, IReadOnlyList<string> dataFiles, ITrainingObserver observer, ICommunicator ranks)
    {
        var s = o.Step;
        if (!s.UsesReference) return null;
        string refPath = s.ReferenceModel ?? s.Model;
        // With LoRA the reference is the policy's own frozen base, adapters off (as TRL does with PEFT): no second copy.
        bool adaptersOffIsReference = adapters != null && s.ReferenceModel is null;
        if (s.Reference == ReferenceMode.Resident)
            return adaptersOffIsReference ? new AdapterOffReference(policy, adapters!, s.Head)
                : new ResidentReference(WithKernels(LoadPolicy(refPath, s.Dtype, requireTokenizer: false, o.Seed).Model, s.Kernels), s.Head);
        string key = cacheDirectory is null ? "in-memory"
            : ReferenceCacheKey.For(o, dataFiles, ranks.Size, train.BatchesPerEpoch, eval?.BatchesPerEpoch ?? 0).Hash();
        // Before the first update the policy *is* the reference: the pre-pass reuses it and no second copy is loaded.
        bool policyIsReference = (!resuming && s.ReferenceModel is null) || adaptersOffIsReference;
        using var off = adaptersOffIsReference ? adapters!.Disabled() : null;
        return CachedReference.LoadOrCompute(cacheDirectory, key,
            () => policyIsReference ? (policy, false) : (WithKernels(LoadPolicy(refPath, s.Dtype, requireTokenizer: false, o.Seed).Model, s.Kernels), true),
            s.Method, s.Objective, train, eval, s.Head, observer.Notice, ranks);
    }

    /// <summary>
    /// One optimizer step over up to <paramref name="gradAccum"/> micro-batches from <paramref name="batches"/>:
    /// forward, backward, clipping, the non-finite guard, AdamW at <paramref name="learningRate"/>. Null when the data
    /// is exhausted before the first micro-batch. The step's micro-batches are drawn first (as transformers'
    /// get_batch_samples does), so that <see cref="MicroBatchWeights"/> knows the step's loss units before the first
    /// backward; the loss reported (and logged as "loss") is the weighted sum that was differentiated. On N ranks the
    /// units are summed over every rank before the weights are taken, and the weighted gradients are summed over ranks
    /// (<see cref="GradientBuckets"/>), so the step equals one process's step over the whole global batch. The loss,
    /// metrics and tokens returned are the whole step's; the gradient norm, and so clipping and the non-finite guard,
    /// are rank 0's on every rank.
    /// </summary>
    public StepOutcome? TrainStep(IEnumerator<ITrainBatch> batches, int gradAccum, double learningRate)
    {
        Policy.train();
        var micro = new List<ITrainBatch>(gradAccum);
        try
        {
            // The schedule is global, so every rank draws the same number of micro-batches and runs out at the same step.
            while (micro.Count < gradAccum && batches.MoveNext()) micro.Add(batches.Current);
            if (micro.Count == 0) return null;
            var weights = MicroBatchWeights.For(Settings.Method, micro);
            if (Ranks.Size > 1) weights = MicroBatchWeights.For(Settings.Method, micro, Ranks.AllReduceSum(weights.TotalUnits));
            var metrics = new ObjectiveMetrics();
            double loss = 0;
            long tokens = 0;
            for (int m = 0; m < micro.Count; m++)
            {
                using var scope = NewDisposeScope();
                // Gradients are summed over ranks once, during the last micro-batch's backward (DDP's no_sync before it).
                if (Gradients != null) Gradients.Armed = m == micro.Count - 1;
                var result = Step.Compute(micro[m], eval: false);
                _probe?.BeforeBackward();
                KernelNode.RunBackward(result.Loss * weights[m]);
                loss += result.Loss.item<float>() * weights[m];
                metrics.Merge(result.Metrics);
                tokens += micro[m].Tokens;
            }
            Gradients?.Finish();
            if (Ranks.Size > 1)
            {
                Span<double> totals = stackalloc double[] { loss, tokens };
                Ranks.AllReduceSum(totals);
                (loss, tokens) = (totals[0], (long)totals[1]);
                metrics = metrics.AcrossRanks(Ranks);
            }
            metrics.Set(MetricNames.Loss, loss);
            var (gradNorm, finite) = StepProfiler.Time(OpClass.Optimizer, () =>
            {
                double norm = Optimizer.ClipGradients(Options.MaxGradNorm, Ranks.Size > 1 ? AgreeWithRoot : null);
                bool ok = double.IsFinite(loss) && double.IsFinite(norm);
                if (ok) Optimizer.Step(learningRate);
                Optimizer.ZeroGrad();
                return (norm, ok);
            });
            return new StepOutcome(loss, metrics, gradNorm, finite, tokens, micro.Count, micro[^1].Next);
        }
        finally
        {
            foreach (var b in micro) b.Dispose();
        }
    }

    /// <summary>Rank 0's value on every rank (the summed gradients are equal on all ranks; this makes their decisions equal by construction).</summary>
    double AgreeWithRoot(double value)
    {
        var v = new[] { value };
        Ranks.Broadcast(v, root: 0);
        return v[0];
    }

    /// <summary>The objective's metrics over the eval split, without gradients.</summary>
    public IReadOnlyDictionary<string, double> Evaluate()
    {
        Policy.eval(); // no dropout (LoRA's) while evaluating; TrainStep switches back
        return Evaluation.Run(Step, Eval ?? throw new InvalidOperationException("this session has no eval split"), Ranks);
    }

    public void Dispose()
    {
        Gradients?.Dispose();
        Optimizer.Dispose();
        Reference?.Dispose();
        Adapters?.Dispose();
        Policy.Dispose();
    }
}
