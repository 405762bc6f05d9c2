using Engine.Data;
using Engine.Objectives;
using Engine.Util;

namespace Engine.Methods;

/// <summary>Direct preference optimisation against a frozen reference (TRL's DPOTrainer).</summary>
public sealed class DpoMethod : PairedMethod
{
    public override string Name => "dpo";
    public override string Description => "direct preference optimisation against a frozen reference (sigmoid, robust, hinge, ipo)";
    /// <summary>alignment.md.</summary>
    public override double DefaultLearningRate => 5e-7;
    public override double? DefaultBeta => new DpoOptions().Beta;
    protected override IReadOnlyCollection<string> Knobs { get; } = new[] { "beta", "loss-type", "label-smoothing", "rpo-alpha", "reference-free" };
    public override IReadOnlyList<string> LossTypes => Spelling.Names<DpoLossType>();

    public override bool UsesReference(ObjectiveOptions o) => !o.ReferenceFree;
    public override MethodCost Cost(ObjectiveOptions o) => new(PolicyRows: 2, NoGradPolicyRows: 0, ReferenceRows: UsesReference(o) ? 2 : 0);

    public DpoOptions Options(ObjectiveOptions o) => new()
    {
        Beta = o.Beta ?? DefaultBeta!.Value,
        LossType = o.LossType is null ? DpoLossType.Sigmoid : Spelling.Parse<DpoLossType>(o.LossType, "--loss-type (dpo)"),
        LabelSmoothing = o.LabelSmoothing ?? 0,
        RpoAlpha = o.RpoAlpha,
        ReferenceFree = o.ReferenceFree,
    };

    protected override void ValidateValues(ObjectiveOptions o) => Options(o).Validate();

    public override IMethodStep CreateStep(ObjectiveOptions o, StepContext c)
    {
        var dpo = new DpoObjective(Options(o));
        return Step<PairedBatch>((batch, eval) =>
        {
            var (chosen, rejected) = Score(batch, c);
            if (c.Reference is null) return dpo.Compute(chosen, rejected, null, null);
            using var reference = c.Reference.Sums(Query(batch), eval);
            return dpo.Compute(chosen, rejected, reference.narrow(0, 0, batch.Pairs), reference.narrow(0, batch.Pairs, batch.Pairs));
        });
    }

    public override IEnumerable<ReferenceQuery> ReferenceQueries(ITrainBatch batch, ObjectiveOptions options) => new[] { Query(As<PairedBatch>(batch, Name)) };
}
