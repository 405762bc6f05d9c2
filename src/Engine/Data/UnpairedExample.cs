namespace Engine.Data;

/// <summary>An unpaired (KTO) row: a completion judged desirable (<see cref="Label"/> true) or undesirable.</summary>
public sealed record UnpairedExample(ExampleText Prompt, ExampleText Completion, bool Label, RowSource Source)
{
    public bool Desirable => Label;
}
