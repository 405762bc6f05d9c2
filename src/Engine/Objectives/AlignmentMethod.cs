namespace Engine.Objectives;

/// <summary>The training objectives Engine runs.</summary>
public enum AlignmentMethod { Dpo, Kto, Sft, Orpo, Simpo }

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

/// <summary>One row of the method table.</summary>
/// <param name="NeedsReferenceModel">Whether the default configuration needs a frozen reference model
/// (DPO and KTO have reference-free modes; see <see cref="AlignmentMethods.NeedsReferenceModel"/>).</param>
/// <param name="DefaultBeta">β (ORPO: λ) by default; null where the method has none.</param>
/// <param name="DefaultLearningRate">AdamW learning rate by default.</param>
public sealed record AlignmentMethodInfo(
    AlignmentMethod Method, string Name, bool NeedsReferenceModel, DataShape DataShape,
    double? DefaultBeta, double DefaultLearningRate, string Description);

/// <summary>The method table and the parsing of method and loss-type names.</summary>
public static class AlignmentMethods
{
    // Learning rates: DPO 5e-7 and KTO 5e-6 (KTO wants 2–10× DPO's) from alignment.md; SFT 2e-5 and ORPO/SimPO
    // 1e-6 are TRL's SFTConfig / ORPOConfig / CPOConfig defaults. β: 0.1 (DPO, KTO, ORPO's λ) as in TRL;
    // SimPO 2.0 as in the SimPO paper (see SimpoOptions).
    public static IReadOnlyList<AlignmentMethodInfo> All { get; } = new[]
    {
        new AlignmentMethodInfo(AlignmentMethod.Dpo, "dpo", true, DataShape.Paired, new DpoOptions().Beta, 5e-7,
            "direct preference optimisation against a frozen reference (sigmoid, robust, hinge, ipo)"),
        new AlignmentMethodInfo(AlignmentMethod.Kto, "kto", true, DataShape.Unpaired, new KtoOptions().Beta, 5e-6,
            "Kahneman-Tversky optimisation on desirable/undesirable completions"),
        new AlignmentMethodInfo(AlignmentMethod.Sft, "sft", false, DataShape.Completions, null, 2e-5,
            "supervised fine-tuning: per-token NLL of the completions"),
        new AlignmentMethodInfo(AlignmentMethod.Orpo, "orpo", false, DataShape.Paired, new OrpoOptions().Lambda, 1e-6,
            "odds-ratio preference optimisation: NLL plus an odds-ratio term, no reference model"),
        new AlignmentMethodInfo(AlignmentMethod.Simpo, "simpo", false, DataShape.Paired, new SimpoOptions().Beta, 1e-6,
            "simple preference optimisation: length-normalised margin with target γ, no reference model"),
    };

    public static AlignmentMethodInfo Info(AlignmentMethod method) => All.First(m => m.Method == method);

    /// <summary>Whether a reference model must be loaded for this method and mode.</summary>
    public static bool NeedsReferenceModel(AlignmentMethod method, bool referenceFree)
        => Info(method).NeedsReferenceModel && !referenceFree;

    public static AlignmentMethod Parse(string name)
    {
        var key = name.Trim().ToLowerInvariant();
        foreach (var m in All) if (m.Name == key) return m.Method;
        throw new EngineException($"unknown alignment method '{name}'; expected one of: {string.Join(", ", All.Select(m => m.Name))}");
    }

    static readonly (string Name, DpoLossType Type)[] DpoLossNames =
        { ("sigmoid", DpoLossType.Sigmoid), ("robust", DpoLossType.Robust), ("hinge", DpoLossType.Hinge), ("ipo", DpoLossType.Ipo) };
    static readonly (string Name, KtoLossType Type)[] KtoLossNames =
        { ("kto", KtoLossType.Kto), ("apo_zero_unpaired", KtoLossType.ApoZeroUnpaired) };

    public static DpoLossType ParseDpoLossType(string name)
    {
        var key = name.Trim().ToLowerInvariant();
        foreach (var (n, t) in DpoLossNames) if (n == key) return t;
        throw new EngineException($"unknown DPO loss type '{name}'; expected one of: {string.Join(", ", DpoLossNames.Select(x => x.Name))}");
    }

    public static KtoLossType ParseKtoLossType(string name)
    {
        var key = name.Trim().ToLowerInvariant();
        foreach (var (n, t) in KtoLossNames) if (n == key) return t;
        throw new EngineException($"unknown KTO loss type '{name}'; expected one of: {string.Join(", ", KtoLossNames.Select(x => x.Name))}");
    }

    public static string Name(AlignmentMethod method) => Info(method).Name;
    public static string Name(DpoLossType type) => DpoLossNames.First(x => x.Type == type).Name;
    public static string Name(KtoLossType type) => KtoLossNames.First(x => x.Type == type).Name;
}
