using Engine.Util;

namespace Engine.Objectives;

/// <summary>DPO loss variants, spelled as TRL's loss_type.</summary>
public enum DpoLossType { [Spelling("sigmoid")] Sigmoid, [Spelling("robust")] Robust, [Spelling("hinge")] Hinge, [Spelling("ipo")] Ipo }

/// <summary>Settings of the DPO family; defaults are TRL's and alignment.md's.</summary>
public sealed record DpoOptions
{
    /// <summary>β: the strength of the implicit KL penalty (for IPO, τ in the paper).</summary>
    public double Beta { get; init; } = 0.1;
    public DpoLossType LossType { get; init; } = DpoLossType.Sigmoid;
    /// <summary>ε: assumed probability that a preference label is flipped (conservative / robust DPO).</summary>
    public double LabelSmoothing { get; init; }
    /// <summary>Treat log π_ref as 0 (a uniform reference): no reference model is needed.</summary>
    public bool ReferenceFree { get; init; }
    /// <summary>RPO: weight α of the chosen completions' per-token NLL added to the loss; null = off.</summary>
    public double? RpoAlpha { get; init; }

    public void Validate()
    {
        if (!(Beta > 0) || !double.IsFinite(Beta)) throw new EngineException($"dpo: beta must be a positive number, got {Beta}");
        if (RpoAlpha is double a && (!(a >= 0) || !double.IsFinite(a)))
            throw new EngineException($"dpo: rpo alpha must be ≥ 0, got {a}");
        double e = LabelSmoothing;
        switch (LossType)
        {
            case DpoLossType.Sigmoid when !(e >= 0 && e <= 0.5):
                throw new EngineException($"dpo: label smoothing must be in [0, 0.5] for the sigmoid loss, got {e}");
            case DpoLossType.Robust when !(e >= 0 && e < 0.5):
                throw new EngineException($"dpo: label smoothing must be in [0, 0.5) for the robust loss (it divides by 1 − 2ε), got {e}");
            case DpoLossType.Hinge or DpoLossType.Ipo when e != 0:
                throw new EngineException($"dpo: label smoothing applies to the sigmoid and robust losses only, not {Spelling.Of(LossType)}");
        }
    }
}
