namespace Engine.Data;

/// <summary>
/// Where a dataset row came from, for error messages: the file and either its line (JSONL, JSON) or its
/// 1-based row number (Parquet, elements of a JSON array).
/// </summary>
public sealed record RowSource(string File, int? Line, long Row)
{
    public override string ToString() => Line is int line ? $"{File}:{line}" : $"{File}: row {Row}";
}
