using Engine.Tests.Infrastructure;
using Parquet;
using Parquet.Schema;
using Parquet.Serialization;

namespace Engine.Tests.Data;

/// <summary>Writes small dataset files for tests.</summary>
public static class DataFiles
{
    public static string Lines(TempDir dir, string name, params string[] lines)
    {
        string path = dir.File(name);
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    public static string Parquet(TempDir dir, string name, ParquetSchema schema, IReadOnlyCollection<IDictionary<string, object?>> rows)
    {
        string path = dir.File(name);
        using var stream = File.Create(path);
        ParquetSerializer.SerializeUntypedAsync(rows, schema, stream).GetAwaiter().GetResult();
        return path;
    }

    /// <summary>A list-of-struct message column as the hub's parquet files have it (ultrafeedback_binarized).</summary>
    public static ListField MessageColumn(string name) =>
        new(name, new StructField("element", new DataField<string>("content"), new DataField<string>("role")));

    public static List<Dictionary<string, object?>> Messages(params (string Role, string Content)[] turns) =>
        turns.Select(t => new Dictionary<string, object?> { ["content"] = t.Content, ["role"] = t.Role }).ToList();
}
