using Engine.Data;
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
}

/// <summary>One optimizer step's result.</summary>
public sealed record StepOutcome(double Loss, ObjectiveMetrics Metrics, double GradNorm, bool Finite, long Tokens, int MicroBatches, DataPosition Next);

/// <summary>
/// One training session: builds the policy (precision, checkpointing), the data as the method's batches, the reference
/// (cached pre-pass or resident model) and AdamW, then runs optimizer steps. The trainer, `plan --measure` and
/// `bench train` all run their steps through this type, so they measure the code that `train` runs.
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

    TrainingSession(TrainingOptions options, LlamaForCausalLM policy, TextTokenizer? tokenizer, AdamW optimizer, IReferenceLogps? reference,
        IBatchSource<ITrainBatch> train, IBatchSource<ITrainBatch>? eval, IReadOnlyList<string> dataFiles)
    {
        Options = options; Policy = policy; Tokenizer = tokenizer; Optimizer = optimizer; Reference = reference;
        Train = train; Eval = eval; DataFiles = dataFiles;
        Step = options.Step.Method.CreateStep(options.Step.Objective, new StepContext(policy, reference, options.Step.Head));
    }

    /// <summary>How the reference log-probs are obtained, for the run's start line.</summary>
    public string ReferenceHandling => Reference switch
    {
        null => "none (reference-free)",
        CachedReference c => c.LoadedFromDisk ? "cached (loaded)" : "cached (pre-pass)",
        _ => "resident model",
    };

    /// <param name="checkpoint">resume from this checkpoint folder (its model and optimizer state)</param>
    public static TrainingSession Open(TrainingOptions o, SessionData data, ITrainingObserver observer,
        string? checkpoint = null, TrainerState? state = null, ISessionProbe? probe = null)
    {
        var s = o.Step;
        s.Validate();
        manual_seed(o.Seed);
        bool synthetic = data is SessionData.Synthetic;
        var (policy, tokenizer) = LoadPolicy(checkpoint is null ? s.Model : CheckpointStore.ModelDir(checkpoint), ScalarType.Float32,
            requireTokenizer: !synthetic, o.Seed);
        AdamW? optimizer = null;
        IReferenceLogps? reference = null;
        try
        {
            // Mixed precision: fp32 master copies are taken before the cast, so they hold the checkpoint's exact values.
            Dictionary<string, Tensor>? masters = null;
            if (s.Precision == Precision.Bf16Mixed)
                masters = policy.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
            policy.ConvertTo(s.Dtype);
            if (s.ActivationCheckpointing) ActivationCheckpointing.Enable(policy);
            probe?.ModelBuilt(masters?.Values.Sum(m => m.numel() * 4) ?? 0);

            IBatchSource<ITrainBatch> train;
            IBatchSource<ITrainBatch>? eval = null;
            IReadOnlyList<string> files = Array.Empty<string>();
            if (data is SessionData.Synthetic syn) train = s.Method.Synthetic(syn.Shape);
            else
            {
                var prepared = RunData.Prepare(o, tokenizer!);
                foreach (var n in prepared.Notices) observer.Notice(n);
                train = prepared.Train.Batches;
                eval = prepared.Eval?.Batches;
                files = prepared.DataFiles;
            }

            optimizer = new AdamW(policy.named_parameters().Select(p => (p.name, p.parameter)), weightDecay: o.WeightDecay,
                stateDtype: s.Bf16OptimizerStates ? ScalarType.BFloat16 : ScalarType.Float32,
                masters: masters, masterWeights: s.Precision != Precision.Bf16Pure, kernel: s.OptimizerKernel);
            if (masters != null) foreach (var m in masters.Values) m.Dispose();
            if (checkpoint != null) CheckpointStore.LoadOptimizer(checkpoint, optimizer, state ?? CheckpointStore.ReadState(checkpoint));
            probe?.OptimizerBuilt();
            reference = OpenReference(o, policy, resuming: checkpoint != null, synthetic ? null : o.OutputDir, train, eval, files, observer);
            probe?.ReferenceBuilt();
            return new TrainingSession(o, policy, tokenizer, optimizer, reference, train, eval, files);
        }
        catch
        {
            optimizer?.Dispose();
            reference?.Dispose();
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

    static IReferenceLogps? OpenReference(TrainingOptions o, LlamaForCausalLM policy, bool resuming, string? cacheDirectory,
        IBatchSource<ITrainBatch> train, IBatchSource<ITrainBatch>? eval, IReadOnlyList<string> dataFiles, ITrainingObserver observer)
    {
        var s = o.Step;
        if (!s.UsesReference) return null;
        string refPath = s.ReferenceModel ?? s.Model;
        if (s.Reference == ReferenceMode.Resident)
            return new ResidentReference(LoadPolicy(refPath, s.Dtype, requireTokenizer: false, o.Seed).Model, s.Head);
        string key = cacheDirectory is null ? "in-memory" : ReferenceCacheKey.For(o, dataFiles).Hash();
        // Before the first update the policy *is* the reference: the pre-pass reuses it and no second copy is loaded.
        bool policyIsReference = !resuming && s.ReferenceModel is null;
        return CachedReference.LoadOrCompute(cacheDirectory, key,
            () => policyIsReference ? (policy, false) : (LoadPolicy(refPath, s.Dtype, requireTokenizer: false, o.Seed).Model, true),
            s.Method, s.Objective, train, eval, s.Head, observer.Notice);
    }

    /// <summary>
    /// One optimizer step over up to <paramref name="gradAccum"/> micro-batches from <paramref name="batches"/>:
    /// forward, backward, clipping, the non-finite guard, AdamW at <paramref name="learningRate"/>. Null when the data
    /// is exhausted before the first micro-batch. The step's micro-batches are drawn first (as transformers'
    /// get_batch_samples does), so that <see cref="MicroBatchWeights"/> knows the step's loss units before the first
    /// backward; the loss reported (and logged as "loss") is the weighted sum that was differentiated.
    /// </summary>
    public StepOutcome? TrainStep(IEnumerator<ITrainBatch> batches, int gradAccum, double learningRate)
    {
        Policy.train();
        var micro = new List<ITrainBatch>(gradAccum);
        try
        {
            while (micro.Count < gradAccum && batches.MoveNext()) micro.Add(batches.Current);
            if (micro.Count == 0) return null;
            var weights = MicroBatchWeights.For(Settings.Method, micro);
            var metrics = new ObjectiveMetrics();
            double loss = 0;
            long tokens = 0;
            for (int m = 0; m < micro.Count; m++)
            {
                using var scope = NewDisposeScope();
                var result = Step.Compute(micro[m], eval: false);
                (result.Loss * weights[m]).backward();
                loss += result.Loss.item<float>() * weights[m];
                metrics.Merge(result.Metrics);
                tokens += micro[m].Tokens;
            }
            metrics.Set(MetricNames.Loss, loss);
            double gradNorm = Optimizer.ClipGradients(Options.MaxGradNorm);
            bool finite = double.IsFinite(loss) && double.IsFinite(gradNorm);
            if (finite) Optimizer.Step(learningRate);
            Optimizer.ZeroGrad();
            return new StepOutcome(loss, metrics, gradNorm, finite, tokens, micro.Count, micro[^1].Next);
        }
        finally
        {
            foreach (var b in micro) b.Dispose();
        }
    }

    /// <summary>The objective's metrics over the eval split, without gradients.</summary>
    public IReadOnlyDictionary<string, double> Evaluate() =>
        Evaluation.Run(Step, Eval ?? throw new InvalidOperationException("this session has no eval split"));

    public void Dispose()
    {
        Optimizer.Dispose();
        Reference?.Dispose();
        Policy.Dispose();
    }
}
