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
    /// <summary>Longest prompt + completion before truncation.</summary>
    public int LongestSequence { get; internal set; }

    internal void Drop(RowSource? source)
    {
        RowsDropped++;
        if (source is not null && _dropped.Count < SourcesKept) _dropped.Add(source);
    }

    public bool Any => PromptsTruncated + CompletionsTruncated + RowsDropped > 0;

    public override string ToString() =>
        $"{Rows} rows: {PromptsTruncated} prompt{(PromptsTruncated == 1 ? "" : "s")} truncated" +
        (PromptsOverMaxLength > 0 ? $" ({PromptsOverMaxLength} longer than max_length on their own)" : "") + ", " +
        $"{CompletionsTruncated} completion{(CompletionsTruncated == 1 ? "" : "s")} truncated, {RowsDropped} row{(RowsDropped == 1 ? "" : "s")} dropped" +
        (_dropped.Count > 0 ? $" (first: {_dropped[0]})" : "");
}
