namespace Engine.Data;

/// <summary>
/// Reads a preference dataset file: JSON Lines (<c>.jsonl</c>), JSON (<c>.json</c>: an array of row objects, or
/// one object per line as Hugging Face writes it) or Parquet (<c>.parquet</c>, the hub's format).
/// </summary>
public static class DatasetReader
{
    public static readonly IReadOnlyList<string> Extensions = new[] { ".jsonl", ".json", ".parquet" };

    public static Dataset Read(string path, DatasetReadOptions? options = null)
    {
        if (Directory.Exists(path))
            throw new EngineException($"{path}: is a folder; give a dataset file ({string.Join(", ", Extensions)})");
        if (!File.Exists(path)) throw new EngineException($"{path}: dataset file not found");
        string ext = Path.GetExtension(path).ToLowerInvariant();
        IEnumerable<IRawRow> rows = ext switch
        {
            ".jsonl" => JsonRows.ReadLines(path),
            ".json" => JsonRows.LooksLikeArray(path) ? JsonRows.ReadArray(path) : JsonRows.ReadLines(path),
            ".parquet" => ParquetRows.Read(path),
            _ => throw new EngineException($"{path}: unsupported dataset file type '{ext}' (supported: {string.Join(", ", Extensions)})"),
        };
        var interpreter = new RowInterpreter(path, options ?? DatasetReadOptions.Default);
        foreach (var row in rows) interpreter.Add(row);
        return interpreter.Finish();
    }
}
