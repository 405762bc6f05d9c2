using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Training;

/// <summary>
/// <c>OUT/metrics.jsonl</c>: one JSON object per logged step (training and eval rows). Resuming from a checkpoint
/// keeps the rows up to that step and appends after them, so a resumed run reads like a straight one.
/// </summary>
public sealed class MetricsLog : IMetricsWriter
{
    public const string FileName = "metrics.jsonl";

    public string Path { get; }
    readonly List<JsonObject> _rows = new();
    public IReadOnlyList<JsonObject> Rows => _rows;

    public MetricsLog(string path, int? resumeStep)
    {
        Path = path;
        if (resumeStep is int step && File.Exists(path))
        {
            foreach (var line in File.ReadLines(path))
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                JsonObject? row;
                try { row = JsonNode.Parse(line) as JsonObject; }
                catch (JsonException) { continue; } // a line cut by a crash mid-write
                if (row?["step"] is JsonValue v && Number(v) <= step) _rows.Add(row);
            }
            Rewrite();
        }
        else if (File.Exists(path)) File.Delete(path);
    }

    public void Write(IReadOnlyDictionary<string, double> values, int step)
    {
        var row = new JsonObject { ["step"] = step };
        foreach (var (k, v) in values)
        {
            // JSON has no NaN/Infinity: non-finite values are written as strings so readers see them flagged.
            row[k] = double.IsFinite(v) ? JsonValue.Create(Math.Round(v, 8)) : JsonValue.Create(v.ToString(CultureInfo.InvariantCulture));
        }
        _rows.Add(row);
        File.AppendAllText(Path, row.ToJsonString() + "\n");
    }

    void Rewrite() => File.WriteAllLines(Path, _rows.Select(r => r.ToJsonString()));

    /// <summary>(step, value) series of one metric across rows that have it.</summary>
    public List<(double Step, double Value)> Series(string name) =>
        _rows.Where(r => r[name] is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
             .Select(r => (Number(r["step"]!), Number(r[name]!))).ToList();

    // Rows built in this process hold ints and doubles, rows parsed from disk hold JSON elements: read both.
    static double Number(JsonNode n) => double.Parse(n.ToJsonString(), CultureInfo.InvariantCulture);
}
