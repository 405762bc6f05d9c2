using Engine.Data;
using Engine.Objectives;

namespace Engine.Methods;

/// <summary>Supervised fine-tuning on the good completions (TRL's SFTTrainer, completion-only loss).</summary>
public sealed class SftMethod : AlignmentMethod
{
    public override string Name => "sft";
    public override string Description => "supervised fine-tuning: per-token NLL of the completions";
    public override DataShape Shape => DataShape.Completions;
    /// <summary>TRL's SFTConfig.</summary>
    public override double DefaultLearningRate => 2e-5;
    public override double? DefaultBeta => null;
    protected override IReadOnlyCollection<string> Knobs { get; } = Array.Empty<string>();
    /// <summary>SFT also takes TRL's unlabeled prompt-completion rows.</summary>
    public override DatasetReadOptions ReadOptions { get; } = new() { UnlabeledCompletionsAreDesirable = true };

    public override bool UsesReference(ObjectiveOptions o) => false;
    public override MethodCost Cost(ObjectiveOptions o) => new(PolicyRows: 1, NoGradPolicyRows: 0, ReferenceRows: 0);
    protected override void ValidateValues(ObjectiveOptions o) { }

    /// <summary>SFT learns the good completions: desirable rows of unpaired data, the chosen side of pairs.</summary>
    public override PreparedSplit Prepare(Dataset data, ExampleTokenizer tokenizer, Batching batching, ObjectiveOptions options)
    {
        var report = new TruncationReport();
        var notices = new List<string>();
        List<TokenizedUnpaired> rows;
        if (data.Format == DataFormat.Paired)
            rows = tokenizer.TokenizeAll(data.ToPaired(), report).Select(p => new TokenizedUnpaired(p.Prompt, p.Chosen, true) { Source = p.Source }).ToList();
        else
        {
            rows = tokenizer.TokenizeAll(data.UnpairedExamples.Where(e => e.Label), report);
            int dropped = data.UnpairedExamples.Count(e => !e.Label);
            if (dropped > 0) notices.Add($"{data.Origin}: SFT trains on desirable rows only; {dropped} undesirable rows skipped");
        }
        if (rows.Count == 0) throw new EngineException($"{data.Origin}: no completions to train on");
        if (report.Any) notices.Add($"{data.Origin}: {report}");
        return new PreparedSplit(new CompletionBatchIterator(rows, batching.MicroBatch, batching.Seed, tokenizer.PadId, batching.Shuffle, batching.Shard), report, notices);
    }

    public override IBatchSource<ITrainBatch> Synthetic(SyntheticShape shape) =>
        new CompletionBatchIterator(SyntheticExamples.Rows(shape), shape.MicroBatch, shape.Seed, 0, shuffle: false);

    /// <summary>
    /// The summed token NLL of an optimizer step is divided by the scored tokens of the whole step (transformers'
    /// num_items_in_batch, which TRL's SFTTrainer passes to its loss), not averaged per micro-batch.
    /// </summary>
    public override double LossUnits(ITrainBatch batch) => As<CompletionBatch>(batch, Name).Sequences.ScoredTokens;

    public override IMethodStep CreateStep(ObjectiveOptions options, StepContext c) =>
        Step<CompletionBatch>((batch, _) => SftObjective.Compute(SequenceScorer.Score(c.Policy, batch.Sequences, c.Head)));
}
