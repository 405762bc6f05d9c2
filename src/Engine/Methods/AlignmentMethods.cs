namespace Engine.Methods;

/// <summary>The methods Engine runs, by name.</summary>
public static class AlignmentMethods
{
    public static readonly DpoMethod Dpo = new();
    public static readonly KtoMethod Kto = new();
    public static readonly SftMethod Sft = new();
    public static readonly OrpoMethod Orpo = new();
    public static readonly SimpoMethod Simpo = new();

    public static IReadOnlyList<AlignmentMethod> All { get; } = new AlignmentMethod[] { Dpo, Kto, Sft, Orpo, Simpo };

    public static IReadOnlyList<string> Names => All.Select(m => m.Name).ToList();

    public static AlignmentMethod Parse(string name) =>
        All.FirstOrDefault(m => m.Name == name.Trim().ToLowerInvariant())
            ?? throw new EngineException($"unknown alignment method '{name}'; expected one of: {string.Join(", ", Names)}");
}
