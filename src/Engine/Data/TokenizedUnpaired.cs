namespace Engine.Data;

/// <summary>A tokenised unpaired (KTO) row.</summary>
public sealed record TokenizedUnpaired(int[] Prompt, int[] Completion, bool Desirable)
{
    public RowSource? Source { get; init; }
}
