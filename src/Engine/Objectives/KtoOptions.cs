using Engine.Util;

namespace Engine.Objectives;

/// <summary>KTO loss variants, spelled as TRL's loss_type.</summary>
public enum KtoLossType { [Spelling("kto")] Kto, [Spelling("apo_zero_unpaired")] ApoZeroUnpaired }

/// <summary>Settings of KTO; defaults are TRL's and the paper's (alignment.md).</summary>
public sealed record KtoOptions
{
    public double Beta { get; init; } = 0.1;
    public KtoLossType LossType { get; init; } = KtoLossType.Kto;
    /// <summary>false = the paper's "no z0" ablation: the reference point is 0.</summary>
    public bool UseZ0 { get; init; } = true;
    /// <summary>Treat log π_ref as 0 (uniform reference): no reference model (the paper pairs it with λ_D = 1.75).</summary>
    public bool ReferenceFree { get; init; }
    /// <summary>λ_D, the weight of desirable rows.</summary>
    public double DesirableWeight { get; init; } = 1.0;
    /// <summary>λ_U, the weight of undesirable rows.</summary>
    public double UndesirableWeight { get; init; } = 1.0;

    public void Validate()
    {
        if (!(Beta > 0) || !double.IsFinite(Beta)) throw new EngineException($"kto: beta must be a positive number, got {Beta}");
        if (!(DesirableWeight > 0) || !double.IsFinite(DesirableWeight))
            throw new EngineException($"kto: desirable weight must be a positive number, got {DesirableWeight}");
        if (!(UndesirableWeight > 0) || !double.IsFinite(UndesirableWeight))
            throw new EngineException($"kto: undesirable weight must be a positive number, got {UndesirableWeight}");
    }
}

/// <summary>The KL reference point z0: the raw mean of the mismatched-pair log-ratios and its clamp at 0.</summary>
public readonly record struct Z0Estimate(double Raw, double Clamped);
