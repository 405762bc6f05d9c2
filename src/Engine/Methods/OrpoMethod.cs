using Engine.Data;
using Engine.Objectives;

namespace Engine.Methods;

/// <summary>Odds-ratio preference optimisation, no reference model (TRL's ORPOTrainer): NLL over prompt + chosen, odds ratio over the completions.</summary>
public sealed class OrpoMethod : PairedMethod
{
    public override string Name => "orpo";
    public override string Description => "odds-ratio preference optimisation: NLL plus an odds-ratio term, no reference model";
    /// <summary>TRL's ORPOConfig.</summary>
    public override double DefaultLearningRate => 1e-6;
    public override double? DefaultBeta => new OrpoOptions().Lambda;
    protected override IReadOnlyCollection<string> Knobs { get; } = new[] { "beta" };

    public override bool UsesReference(ObjectiveOptions o) => false;
    public override MethodCost Cost(ObjectiveOptions o) => new(PolicyRows: 2, NoGradPolicyRows: 0, ReferenceRows: 0);

    OrpoOptions Options(ObjectiveOptions o) => new() { Lambda = o.Beta ?? DefaultBeta!.Value };
    protected override void ValidateValues(ObjectiveOptions o) => Options(o).Validate();

    public override IMethodStep CreateStep(ObjectiveOptions o, StepContext c)
    {
        var orpo = new OrpoObjective(Options(o));
        return Step<PairedBatch>((batch, _) =>
        {
            // TRL's NLL covers the chosen rows' prompt tokens too: scored in the same head pass as the completions.
            var (completions, chosenPrompts) = SequenceScorer.ScoreWithPrompts(c.Policy, batch.Sequences, c.Head, 0, batch.Pairs);
            return orpo.Compute(SequenceScorer.Slice(completions, 0, batch.Pairs), SequenceScorer.Slice(completions, batch.Pairs, batch.Pairs), chosenPrompts);
        });
    }
}
