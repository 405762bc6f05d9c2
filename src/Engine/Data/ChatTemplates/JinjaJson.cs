using System.Globalization;
using System.Text;

namespace Engine.Data.ChatTemplates;

/// <summary>
/// transformers' <c>tojson</c>: Python's json.dumps(value, ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False). Default separators are ", " and ": " (with indent: "," and ": "); non-ASCII characters
/// are kept; control characters, quotes and backslashes are escaped.
/// </summary>
internal static class JinjaJson
{
    public static string Dumps(JinjaRenderer r, object? value, JinjaArgs a)
    {
        var indentArg = a.Optional(0, "indent", null);
        bool ensureAscii = a.OptionalBool(1, "ensure_ascii", false);
        var separators = a.Optional(2, "separators", null);
        bool sortKeys = a.OptionalBool(3, "sort_keys", false);
        string? indent = indentArg switch
        {
            null => null,
            long n when n >= 0 && n <= 64 => new string(' ', (int)n),
            string s => s,
            _ => throw r.Fail(a.Pos, "tojson: indent must be a small integer or a string"),
        };
        string itemSep = indent is null ? ", " : ",", keySep = ": ";
        if (separators is IList<object?> { Count: 2 } seps && seps[0] is string i0 && seps[1] is string k0)
        {
            itemSep = i0;
            keySep = k0;
        }
        else if (separators is not null) throw r.Fail(a.Pos, "tojson: separators must be a pair of strings");
        var sb = new StringBuilder();
        Write(r, a.Pos, sb, value, indent, itemSep, keySep, ensureAscii, sortKeys, 0);
        return sb.ToString();
    }

    static void Write(JinjaRenderer r, SourcePos pos, StringBuilder sb, object? v, string? indent, string itemSep, string keySep,
                      bool ascii, bool sortKeys, int depth)
    {
        if (depth > 100) throw r.Fail(pos, "tojson: value nested too deeply");
        if (sb.Length > JinjaRenderer.MaxOutputChars) throw r.Fail(pos, "tojson: output too large");
        switch (v)
        {
            case null: sb.Append("null"); break;
            case Undefined u: throw r.Fail(pos, $"tojson: '{u.Name}' is undefined");
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : JinjaValue.FloatRepr(d));
                break;
            case string s: WriteString(sb, s, ascii); break;
            case IList<object?> list:
                if (list.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, indent, depth + 1);
                    Write(r, pos, sb, list[i], indent, itemSep, keySep, ascii, sortKeys, depth + 1);
                }
                NewLine(sb, indent, depth);
                sb.Append(']');
                break;
            case JinjaDict dict:
            {
                if (dict.Count == 0) { sb.Append("{}"); break; }
                var pairs = dict.Pairs.Select(p => (Key: KeyString(r, pos, p.Key), p.Value)).ToList();
                if (sortKeys) pairs = pairs.OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
                sb.Append('{');
                for (int i = 0; i < pairs.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, indent, depth + 1);
                    WriteString(sb, pairs[i].Key, ascii);
                    sb.Append(keySep);
                    Write(r, pos, sb, pairs[i].Value, indent, itemSep, keySep, ascii, sortKeys, depth + 1);
                }
                NewLine(sb, indent, depth);
                sb.Append('}');
                break;
            }
            default: throw r.Fail(pos, $"tojson: a {JinjaValue.TypeName(v)} is not JSON serializable");
        }
    }

    static string KeyString(JinjaRenderer r, SourcePos pos, object key) => key switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => JinjaValue.FloatRepr(d),
        _ => throw r.Fail(pos, $"tojson: keys must be str, int, float or bool, not {JinjaValue.TypeName(key)}"),
    };

    static void NewLine(StringBuilder sb, string? indent, int depth)
    {
        if (indent is null) return;
        sb.Append('\n');
        for (int i = 0; i < depth; i++) sb.Append(indent);
    }

    static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ascii && c > 0x7e)) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
