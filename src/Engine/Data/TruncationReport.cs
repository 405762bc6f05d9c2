namespace Engine.Data;

/// <summary>What tokenisation cut or dropped, so a run can say how much of its data was shortened.</summary>
public sealed class TruncationReport
{
    const int SourcesKept = 10;
    readonly List<RowSource> _dropped = new();

    /// <summary>Rows tokenised (kept or dropped).</summary>
    public int Rows { get; internal set; }
    /// <summary>Prompts longer than allowed, cut by the truncation mode.</summary>
    public int PromptsTruncated { get; internal set; }
    /// <summary>Prompts that alone reached max_length (cut like any over-long prompt, so the row still trains).</summary>
    public int PromptsOverMaxLength { get; internal set; }
    /// <summary>Completions cut at the end (a pair whose chosen and rejected were both cut counts 2).</summary>
    public int CompletionsTruncated { get; internal set; }
    /// <summary>Rows with no completion token left, which cannot be trained on.</summary>
    public int RowsDropped { get; internal set; }
    /// <summary>The first dropped rows, for messages.</summary>
    public IReadOnlyList<RowSource> DroppedSources => _dropped;
    /// <summary>
    /// Rows whose prompt + completion tokenization merged tokens across the boundary, so the prompt's last token(s)
    /// were scored as completion (TRL's DPO/KTO warn "Mismatch between tokenized prompt and the start of tokenized
    /// prompt+completion" for these).
    /// </summary>
    public int BoundaryMerges { get; internal set; }
    /// <summary>Longest prompt + completion before truncation.</summary>
    public int LongestSequence { get; internal set; }

    internal void Drop(RowSource? source)
    {
        RowsDropped++;
        if (source is not null && _dropped.Count < SourcesKept) _dropped.Add(source);
    }

    public bool Any => PromptsTruncated + CompletionsTruncated + RowsDropped + BoundaryMerges > 0;

    public override string ToString() =>
        $"{Rows} rows: {PromptsTruncated} prompt{(PromptsTruncated == 1 ? "" : "s")} truncated" +
        (PromptsOverMaxLength > 0 ? $" ({PromptsOverMaxLength} longer than max_length on their own)" : "") + ", " +
        $"{CompletionsTruncated} completion{(CompletionsTruncated == 1 ? "" : "s")} truncated, {RowsDropped} row{(RowsDropped == 1 ? "" : "s")} dropped" +
        (_dropped.Count > 0 ? $" (first: {_dropped[0]})" : "") +
        (BoundaryMerges > 0 ? $"; {BoundaryMerges} row{(BoundaryMerges == 1 ? "" : "s")} merged tokens across the prompt/completion boundary " +
                              "(the merged token is scored as completion)" : "");
}
