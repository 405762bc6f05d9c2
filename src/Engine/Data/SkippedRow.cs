namespace Engine.Data;

/// <summary>A row left out while reading (e.g. an empty completion), with why.</summary>
public sealed record SkippedRow(RowSource Source, string Reason);
