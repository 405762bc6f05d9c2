using Engine.Data;
using Engine.Objectives;

namespace Engine.Methods;

/// <summary>Simple preference optimisation, no reference model (TRL's CPOTrainer with loss_type="simpo").</summary>
public sealed class SimpoMethod : PairedMethod
{
    public override string Name => "simpo";
    public override string Description => "simple preference optimisation: length-normalised margin with target γ, no reference model";
    /// <summary>TRL's CPOConfig.</summary>
    public override double DefaultLearningRate => 1e-6;
    /// <summary>The SimPO paper's β (see <see cref="SimpoOptions"/>).</summary>
    public override double? DefaultBeta => new SimpoOptions().Beta;
    protected override IReadOnlyCollection<string> Knobs { get; } = new[] { "beta", "simpo-gamma" };

    public override bool UsesReference(ObjectiveOptions o) => false;
    public override MethodCost Cost(ObjectiveOptions o) => new(PolicyRows: 2, NoGradPolicyRows: 0, ReferenceRows: 0);

    SimpoOptions Options(ObjectiveOptions o) => new() { Beta = o.Beta ?? DefaultBeta!.Value, Gamma = o.SimpoGamma ?? new SimpoOptions().Gamma };
    protected override void ValidateValues(ObjectiveOptions o) => Options(o).Validate();

    public override IMethodStep CreateStep(ObjectiveOptions o, StepContext c)
    {
        var simpo = new SimpoObjective(Options(o));
        return Step<PairedBatch>((batch, _) =>
        {
            var (chosen, rejected) = Score(batch, c);
            return simpo.Compute(chosen, rejected);
        });
    }
}
