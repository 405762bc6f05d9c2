namespace Engine.Methods;

/// <summary>
/// The objective knobs a user can set, under TRL's names. Null means "the method's default"; a knob set for a
/// method that does not use it is an error (<see cref="AlignmentMethod.Validate"/>), never silently ignored.
/// </summary>
public sealed record ObjectiveOptions
{
    /// <summary>β (ORPO: λ, which TRL also calls beta).</summary>
    public double? Beta { get; init; }
    /// <summary>TRL's loss_type; each method parses its own names.</summary>
    public string? LossType { get; init; }
    public double? LabelSmoothing { get; init; }
    public double? RpoAlpha { get; init; }
    /// <summary>log π_ref taken as 0: no reference model.</summary>
    public bool ReferenceFree { get; init; }
    /// <summary>KTO ablation: z0 fixed at 0.</summary>
    public bool NoZ0 { get; init; }
    public double? DesirableWeight { get; init; }
    public double? UndesirableWeight { get; init; }
    /// <summary>SimPO's target margin γ.</summary>
    public double? SimpoGamma { get; init; }

    /// <summary>The knobs that are set, by their option names (for "does not apply" errors).</summary>
    public IEnumerable<string> SetKnobs()
    {
        if (Beta is not null) yield return "beta";
        if (LossType is not null) yield return "loss-type";
        if (LabelSmoothing is not null) yield return "label-smoothing";
        if (RpoAlpha is not null) yield return "rpo-alpha";
        if (ReferenceFree) yield return "reference-free";
        if (NoZ0) yield return "no-z0";
        if (DesirableWeight is not null) yield return "desirable-weight";
        if (UndesirableWeight is not null) yield return "undesirable-weight";
        if (SimpoGamma is not null) yield return "simpo-gamma";
    }
}
