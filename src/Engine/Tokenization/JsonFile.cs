using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Tokenization;

/// <summary>Reads the JSON files of a tokenizer folder, turning syntax errors into messages with line and position.</summary>
internal static class JsonFile
{
    static readonly JsonDocumentOptions Options = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, MaxDepth = 256 };

    public static JsonObject ParseObject(string text, string source)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(text, documentOptions: Options); }
        catch (JsonException e)
        {
            string where = e.LineNumber is long line ? $" at line {line + 1}, position {(e.BytePositionInLine ?? 0) + 1}" : "";
            throw new EngineException($"{source}: invalid JSON{where}: {FirstSentence(e.Message)}", e);
        }
        return node as JsonObject ?? throw new EngineException($"{source}: expected a JSON object at the top level");
    }

    /// <summary>A read-only document of UTF-8 JSON (cheaper than JsonNode for large files such as tokenizer.json).</summary>
    public static JsonDocument ParseDocument(byte[] utf8, string source)
    {
        try
        {
            return JsonDocument.Parse(utf8, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is long line ? $" at line {line + 1}, position {(e.BytePositionInLine ?? 0) + 1}" : "";
            throw new EngineException($"{source}: invalid JSON{where}: {FirstSentence(e.Message)}", e);
        }
    }

    public static JsonObject ReadObject(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new EngineException($"{path}: cannot read: {e.Message}", e);
        }
        return ParseObject(text, path);
    }

    // System.Text.Json appends its own "LineNumber: ... | BytePositionInLine: ..." which we already report.
    static string FirstSentence(string message)
    {
        int cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).TrimEnd();
    }

    public static string? OptionalString(JsonObject obj, string key, string source)
    {
        var node = obj[key];
        if (node is null) return null;
        if (node is JsonValue v && v.TryGetValue(out string? s)) return s;
        throw new EngineException($"{source}: \"{key}\" must be a string");
    }

    public static bool? OptionalBool(JsonObject obj, string key, string source)
    {
        var node = obj[key];
        if (node is null) return null;
        if (node is JsonValue v && v.TryGetValue(out bool b)) return b;
        throw new EngineException($"{source}: \"{key}\" must be true or false");
    }
}
