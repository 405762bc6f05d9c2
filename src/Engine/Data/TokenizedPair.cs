namespace Engine.Data;

/// <summary>A tokenised preference pair: prompt ids (BOS first when added) and completion ids (EOS last when added).</summary>
public sealed record TokenizedPair(int[] Prompt, int[] Chosen, int[] Rejected)
{
    public RowSource? Source { get; init; }
}
