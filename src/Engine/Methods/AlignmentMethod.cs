using Engine.Data;
using Engine.Distributed;
using Engine.Kernels;
using Engine.Models;
using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Methods;

/// <summary>The rows a method trains on.</summary>
public enum DataShape
{
    /// <summary>prompt, chosen, rejected.</summary>
    Paired,
    /// <summary>prompt, completion, label (desirable or not).</summary>
    Unpaired,
    /// <summary>prompt, completion.</summary>
    Completions,
}

/// <summary>Sequences whose reference log-prob sums a method needs, each with a key unique within its split.</summary>
public sealed record ReferenceQuery(SequenceBatch Sequences, long[] Keys);

/// <summary>Where reference log-probs (Σ log π_ref over each row's completion tokens) come from.</summary>
public interface IReferenceLogps : IDisposable
{
    /// <summary>[rows] fp32 sums for the query's rows, without gradient.</summary>
    Tensor Sums(ReferenceQuery query, bool eval);
}

/// <summary>What a method's step runs on: the policy, its reference (null when the method needs none) and the head mode.</summary>
public sealed record StepContext(LlamaForCausalLM Policy, IReferenceLogps? Reference, LogProbMode Head)
{
    /// <summary>The ranks of a data-parallel run, for statistics over the global batch (KTO's z0); one process by default.</summary>
    public ICommunicator Ranks { get; init; } = SingleProcess.Instance;
}

/// <summary>One microbatch → loss and metrics, for training (autograd on) and evaluation (autograd off).</summary>
public interface IMethodStep
{
    ObjectiveResult Compute(ITrainBatch batch, bool eval);
}

/// <summary>A method's forward passes per example, which the memory and throughput models scale by.</summary>
/// <param name="PolicyRows">sequences per example in the policy's gradient forward (2 for pairs)</param>
/// <param name="NoGradPolicyRows">sequences per example in extra policy forwards without gradient (KTO's mismatched pairs)</param>
/// <param name="ReferenceRows">sequences per example whose reference log-probs are needed</param>
public sealed record MethodCost(int PolicyRows, int NoGradPolicyRows, int ReferenceRows)
{
    /// <summary>Sequence batches a microbatch holds at once (KTO: matched and mismatched).</summary>
    public int SequenceBatches => NoGradPolicyRows > 0 ? 2 : 1;
}

/// <summary>Batches of one split for a method, and what preparing them found.</summary>
public sealed record PreparedSplit(IBatchSource<ITrainBatch> Batches, TruncationReport Truncation, IReadOnlyList<string> Notices);

/// <summary>How a split is cut into microbatches: <paramref name="MicroBatch"/> per rank, this rank's <paramref name="Shard"/> of each global batch.</summary>
public sealed record Batching(int MicroBatch, long Seed, bool Shuffle = true)
{
    public DataShard Shard { get; init; } = DataShard.Whole;
}

/// <summary>
/// One alignment method: the data it accepts and its batches, whether and how it needs reference log-probs, its
/// option validation, its step (log-probs → objective → metrics) and its cost factors for the memory planner.
/// Adding a method is one subclass in this folder, listed in <see cref="AlignmentMethods.All"/>.
/// </summary>
public abstract class AlignmentMethod
{
    /// <summary>The CLI/TRL name ("dpo").</summary>
    public abstract string Name { get; }
    public abstract string Description { get; }
    public abstract DataShape Shape { get; }
    public abstract double DefaultLearningRate { get; }
    /// <summary>β (ORPO: λ) when the user sets none; null for methods without one.</summary>
    public abstract double? DefaultBeta { get; }
    /// <summary>The objective knobs (option names) this method reads.</summary>
    protected abstract IReadOnlyCollection<string> Knobs { get; }
    /// <summary>Names --loss-type accepts for this method (empty: none).</summary>
    public virtual IReadOnlyList<string> LossTypes => Array.Empty<string>();
    /// <summary>The smallest micro-batch the method can run (KTO: 2).</summary>
    public virtual int MinMicroBatch => 1;
    /// <summary>"pairs" or "rows": what one example of a micro-batch is.</summary>
    public virtual string ExampleNoun => "rows";
    public virtual DatasetReadOptions ReadOptions => DatasetReadOptions.Default;

    public abstract bool UsesReference(ObjectiveOptions options);
    public abstract MethodCost Cost(ObjectiveOptions options);

    /// <summary>Rejects knobs this method does not read, then checks the values (a clear <see cref="EngineException"/>).</summary>
    public void Validate(ObjectiveOptions options)
    {
        foreach (var knob in options.SetKnobs())
            if (!Knobs.Contains(knob))
            {
                var users = AlignmentMethods.All.Where(m => m.Knobs.Contains(knob)).Select(m => m.Name).ToList();
                throw new EngineException($"--{knob} does not apply to {Name}" + (users.Count > 0 ? $" (it applies to {string.Join(", ", users)})" : ""));
            }
        ValidateValues(options);
    }

    protected abstract void ValidateValues(ObjectiveOptions options);

    /// <summary>Tokenizes a split into this method's batches.</summary>
    public abstract PreparedSplit Prepare(Dataset data, ExampleTokenizer tokenizer, Batching batching, ObjectiveOptions options);

    /// <summary>Random-token batches of a planned shape (memory measurement, benchmarks).</summary>
    public abstract IBatchSource<ITrainBatch> Synthetic(SyntheticShape shape);

    public abstract IMethodStep CreateStep(ObjectiveOptions options, StepContext context);

    /// <summary>
    /// What a micro-batch's loss is a mean over, counted: an optimizer step weighs micro-batch m by
    /// units_m / Σ units (TrainingSession.TrainStep applies it through MicroBatchWeights).
    /// 1 for every method whose loss is a mean per micro-batch (TRL's DPO/KTO/ORPO/CPO divide each micro-batch's
    /// loss by the number of micro-batches, as transformers does when model_accepts_loss_kwargs is false);
    /// token-level losses count their scored tokens (SFT: HF's num_items_in_batch). A rank's shard of a data-parallel
    /// global micro-batch counts its share of that micro-batch's 1, so the global micro-batch still counts 1.
    /// </summary>
    public virtual double LossUnits(ITrainBatch batch) => (double)batch.Examples / batch.GlobalExamples;

    /// <summary>The sequences of <paramref name="batch"/> whose reference log-probs the step will ask for.</summary>
    public virtual IEnumerable<ReferenceQuery> ReferenceQueries(ITrainBatch batch, ObjectiveOptions options) => Array.Empty<ReferenceQuery>();

    public override string ToString() => Name;

    /// <summary>A step from a typed compute function; a batch of another shape is a programming error.</summary>
    protected static IMethodStep Step<TBatch>(Func<TBatch, bool, ObjectiveResult> compute) where TBatch : ITrainBatch
        => new TypedStep<TBatch>(compute);

    protected static TBatch As<TBatch>(ITrainBatch batch, string method) where TBatch : ITrainBatch =>
        batch is TBatch b ? b : throw new ArgumentException($"{method} cannot train on a {batch.GetType().Name}");

    sealed class TypedStep<TBatch>(Func<TBatch, bool, ObjectiveResult> compute) : IMethodStep where TBatch : ITrainBatch
    {
        public ObjectiveResult Compute(ITrainBatch batch, bool eval) => compute(As<TBatch>(batch, typeof(TBatch).Name), eval);
    }

    /// <summary>Key of a (prompt row, completion row) sequence; the same sequence gets the same key in every batch.</summary>
    protected static long SequenceKey(int promptRow, int completionRow) => ((long)promptRow << 32) | (uint)completionRow;
}
