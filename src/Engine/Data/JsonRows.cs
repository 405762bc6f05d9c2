using System.Text;
using System.Text.Json;

namespace Engine.Data;

/// <summary>
/// Rows of a JSON Lines file (one object per line, as Hugging Face's <c>to_json</c> writes even for <c>.json</c>)
/// or of a JSON file holding one array of objects. Malformed JSON is reported with the file and line.
/// </summary>
internal static class JsonRows
{
    static readonly JsonDocumentOptions Options = new() { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 64 };

    /// <summary>A <c>.json</c> file whose first non-blank character is '[' is an array; anything else is read as lines.</summary>
    public static bool LooksLikeArray(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        int c;
        while ((c = reader.Read()) >= 0)
            if (!char.IsWhiteSpace((char)c)) return c == '[';
        return false;
    }

    public static IEnumerable<IRawRow> ReadLines(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        int lineNumber = 0;
        long row = 0;
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line, Options); }
            catch (JsonException e)
            {
                throw new EngineException($"{path}:{lineNumber}: malformed JSON at column {e.BytePositionInLine + 1}: {FirstSentence(e.Message)}"
                    + (lineNumber == 1 && line.TrimStart().StartsWith('{') && !line.TrimEnd().EndsWith('}')
                        ? " (a .json/.jsonl file must hold one JSON object per line, or one array of objects)" : ""));
            }
            using (doc)
            {
                var source = new RowSource(path, lineNumber, ++row);
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                    throw new EngineException($"{source}: each line must be a JSON object with the row's fields (got {KindName(doc.RootElement.ValueKind)})");
                yield return new JsonRow(doc.RootElement, source);
            }
        }
    }

    public static IEnumerable<IRawRow> ReadArray(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int start = bytes.AsSpan().StartsWith(Encoding.UTF8.Preamble) ? Encoding.UTF8.Preamble.Length : 0;
        var lines = new LineCounter(bytes, start);
        var state = new JsonReaderState(new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 64 });
        long consumed = start;
        long row = 0;
        bool inArray = false;
        while (true)
        {
            // The reader is a ref struct: each step re-creates it from the saved state so this method can yield.
            JsonDocument? doc = null;
            int elementLine = 0;
            bool finished = false;
            try
            {
                var reader = new Utf8JsonReader(bytes.AsSpan((int)consumed), isFinalBlock: true, state);
                if (!reader.Read())
                    throw new EngineException($"{path}: the JSON ended before the array was closed");
                if (!inArray)
                {
                    if (reader.TokenType != JsonTokenType.StartArray)
                        throw new EngineException($"{path}:{lines.LineOf(consumed + reader.TokenStartIndex)}: expected a JSON array of row objects");
                    inArray = true;
                    if (!reader.Read()) throw new EngineException($"{path}: the JSON ended before the array was closed");
                }
                if (reader.TokenType == JsonTokenType.EndArray)
                {
                    finished = true;
                    consumed += reader.BytesConsumed;
                    // Anything but whitespace after the array is malformed.
                    int extra = bytes.AsSpan((int)consumed).IndexOfAnyExcept(" \t\r\n"u8);
                    if (extra >= 0) throw new EngineException($"{path}:{lines.LineOf(consumed + extra)}: unexpected content after the closing ']' of the array");
                }
                else
                {
                    elementLine = lines.LineOf(consumed + reader.TokenStartIndex);
                    if (reader.TokenType != JsonTokenType.StartObject)
                        throw new EngineException($"{path}:{elementLine}: array element {row + 1} is {TokenName(reader.TokenType)}, not an object with the row's fields");
                    doc = JsonDocument.ParseValue(ref reader);
                    consumed += reader.BytesConsumed;
                    state = reader.CurrentState;
                }
            }
            catch (JsonException e)
            {
                // The reader state carries the line count across steps, so its (0-based) line is the file's.
                long line = e.LineNumber is long l ? l + 1 : lines.LineOf(consumed);
                throw new EngineException($"{path}:{line}: malformed JSON: {FirstSentence(e.Message)}");
            }
            if (finished) yield break;
            using (doc!)
                yield return new JsonRow(doc!.RootElement, new RowSource(path, elementLine, ++row));
        }
    }

    static string FirstSentence(string message)
    {
        int cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (cut > 0 ? message[..cut] : message).Trim();
    }

    static string KindName(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    static string TokenName(JsonTokenType t) => t switch
    {
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => t.ToString(),
    };

    /// <summary>Maps byte offsets to 1-based line numbers, scanning forward only (offsets arrive in order).</summary>
    sealed class LineCounter(byte[] bytes, int start)
    {
        long _offset = start;
        int _line = 1;

        public int LineOf(long offset)
        {
            if (offset < _offset) { _offset = start; _line = 1; }
            long end = Math.Min(offset, bytes.LongLength);
            for (; _offset < end; _offset++) if (bytes[_offset] == (byte)'\n') _line++;
            return _line;
        }
    }

    sealed class JsonRow(JsonElement element, RowSource source) : IRawRow
    {
        public RowSource Source => source;
        public IReadOnlyCollection<string> Columns => element.EnumerateObject().Select(p => p.Name).Distinct().ToList();

        public bool TryGet(string column, out DataValue value)
        {
            if (!element.TryGetProperty(column, out var v)) { value = DataValue.NullValue; return false; }
            value = Convert(v);
            return true;
        }

        static DataValue Convert(JsonElement v) => v.ValueKind switch
        {
            JsonValueKind.String => new DataValue.Text(v.GetString()!),
            JsonValueKind.True => new DataValue.Bool(true),
            JsonValueKind.False => new DataValue.Bool(false),
            JsonValueKind.Number => v.TryGetDouble(out double d) && double.IsFinite(d) ? new DataValue.Number(d) : new DataValue.Other($"a number out of range ({v.GetRawText()})"),
            JsonValueKind.Null => DataValue.NullValue,
            JsonValueKind.Array => ConvertList(v),
            _ => new DataValue.Other("an object"),
        };

        static DataValue ConvertList(JsonElement array)
        {
            var elements = array.EnumerateArray().ToList();
            for (int i = 0; i < elements.Count; i++)
                if (elements[i].ValueKind != JsonValueKind.Object)
                    return new DataValue.Other($"a list whose element {i + 1} is {KindName(elements[i].ValueKind)}, not a message");
            return DataValue.FromMessageElements(elements, (e, name) =>
                !e.TryGetProperty(name, out var f) ? (false, null, "")
                : f.ValueKind == JsonValueKind.String ? (true, f.GetString(), "string")
                : (true, null, KindName(f.ValueKind)));
        }
    }
}
