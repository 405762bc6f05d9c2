using System.Globalization;
using System.Text;

namespace Engine.Data.ChatTemplates;

/// <summary>A missing variable, attribute or item (Jinja's default Undefined): prints as "", is false, has
/// length 0, iterates as empty; using it as an object (attribute, item, call, arithmetic) is an error.</summary>
internal sealed class Undefined
{
    public string Name { get; }
    public Undefined(string name) => Name = name;
}

/// <summary><c>namespace(...)</c>: the one mutable object templates have (it carries values out of loops).</summary>
internal sealed class JinjaNamespace
{
    public Dictionary<string, object?> Values { get; } = new(StringComparer.Ordinal);
}

/// <summary>A callable value: globals (range, namespace, raise_exception), bound methods, macros.</summary>
internal sealed class JinjaCallable
{
    public delegate object? Body(List<object?> args, Dictionary<string, object?> kwargs, SourcePos pos);
    public string Name { get; }
    public Body Invoke { get; }
    public JinjaCallable(string name, Body invoke)
    {
        Name = name;
        Invoke = invoke;
    }
}

/// <summary>The <c>loop</c> variable inside a for loop.</summary>
internal sealed class LoopContext
{
    public required List<object?> Items { get; init; }
    public int Index0 { get; set; }
    public int Length => Items.Count;
}

/// <summary>An insertion-ordered dict (Python dicts keep insertion order; tojson and items() show it).</summary>
internal sealed class JinjaDict
{
    readonly Dictionary<object, object?> _map = new(PyKeyComparer.Instance);
    readonly List<object> _keys = new();

    public int Count => _keys.Count;
    public IReadOnlyList<object> Keys => _keys;

    public void Set(object key, object? value)
    {
        if (!_map.ContainsKey(key)) _keys.Add(key);
        _map[key] = value;
    }

    public bool TryGet(object key, out object? value) => _map.TryGetValue(key, out value);
    public bool ContainsKey(object key) => _map.ContainsKey(key);

    public IEnumerable<KeyValuePair<object, object?>> Pairs => _keys.Select(k => new KeyValuePair<object, object?>(k, _map[k]));

    /// <summary>Python: 1, 1.0 and True are the same key; None is a key.</summary>
    sealed class PyKeyComparer : IEqualityComparer<object>
    {
        public static readonly PyKeyComparer Instance = new();
        public new bool Equals(object? a, object? b) => JinjaValue.PyEquals(a, b);
        public int GetHashCode(object o) => o switch
        {
            bool b => (b ? 1.0 : 0.0).GetHashCode(),
            long l => ((double)l).GetHashCode(),
            double d => d.GetHashCode(),
            _ => o.GetHashCode(),
        };
    }
}

/// <summary>Python semantics for the values templates manipulate: None (null), bool, long, double, string,
/// lists (List&lt;object?&gt;), tuples (object?[]), <see cref="JinjaDict"/>, and the Jinja objects above.</summary>
internal static class JinjaValue
{
    public static bool IsNumber(object? v) => v is long or double or bool;

    public static bool Truthy(object? v) => v switch
    {
        null => false,
        Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        IList<object?> l => l.Count > 0,
        JinjaDict d => d.Count > 0,
        _ => true,
    };

    public static bool PyEquals(object? a, object? b)
    {
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b)) return ToDouble(a) == ToDouble(b);
        if (a is string sa && b is string sb) return string.Equals(sa, sb, StringComparison.Ordinal);
        if (a is IList<object?> la && b is IList<object?> lb)
        {
            if ((a is object?[]) != (b is object?[]) || la.Count != lb.Count) return false;
            for (int i = 0; i < la.Count; i++) if (!PyEquals(la[i], lb[i])) return false;
            return true;
        }
        if (a is JinjaDict da && b is JinjaDict db)
        {
            if (da.Count != db.Count) return false;
            foreach (var (k, v) in da.Pairs)
                if (!db.TryGet(k, out var w) || !PyEquals(v, w)) return false;
            return true;
        }
        return ReferenceEquals(a, b);
    }

    public static double ToDouble(object? v) => v switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        double d => d,
        _ => throw new InvalidCastException(),
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        object?[] => "tuple",
        IList<object?> => "list",
        JinjaDict => "dict",
        JinjaNamespace => "namespace",
        JinjaCallable => "function",
        LoopContext => "loop",
        _ => v.GetType().Name,
    };

    /// <summary>Python str(): what <c>{{ value }}</c> prints.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    /// <summary>Python repr().</summary>
    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v, 0);
        return sb.ToString();
    }

    static void AppendRepr(StringBuilder sb, object? v, int depth)
    {
        if (depth > 100) throw new InvalidOperationException("value nested too deeply to print");
        switch (v)
        {
            case null: sb.Append("None"); break;
            case Undefined: break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FloatRepr(d)); break;
            case string s: AppendStringRepr(sb, s); break;
            case object?[] t:
                sb.Append('(');
                for (int i = 0; i < t.Length; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, t[i], depth + 1);
                }
                if (t.Length == 1) sb.Append(',');
                sb.Append(')');
                break;
            case IList<object?> list:
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, list[i], depth + 1);
                }
                sb.Append(']');
                break;
            case JinjaDict d:
                sb.Append('{');
                bool first = true;
                foreach (var (k, val) in d.Pairs)
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    AppendRepr(sb, k, depth + 1);
                    sb.Append(": ");
                    AppendRepr(sb, val, depth + 1);
                }
                sb.Append('}');
                break;
            case JinjaNamespace: sb.Append("<Namespace>"); break;
            case JinjaCallable c: sb.Append("<function ").Append(c.Name).Append('>'); break;
            default: sb.Append(v); break;
        }
    }

    static void AppendStringRepr(StringBuilder sb, string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append(quote);
    }

    /// <summary>Python's float repr: shortest round-trip digits, positional for 1e-4 ≤ |x| &lt; 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return 1 / d < 0 ? "-0.0" : "0.0";
        // Shortest round-trip digits: .NET's default ToString gives them; split mantissa and exponent ourselves.
        string shortest = d.ToString("R", CultureInfo.InvariantCulture);
        bool negative = shortest.StartsWith('-');
        if (negative) shortest = shortest[1..];
        int exp = 0;
        int e = shortest.IndexOfAny(new[] { 'E', 'e' });
        string mantissa = shortest;
        if (e >= 0)
        {
            exp = int.Parse(shortest[(e + 1)..], CultureInfo.InvariantCulture);
            mantissa = shortest[..e];
        }
        int dot = mantissa.IndexOf('.');
        string digits = dot < 0 ? mantissa : mantissa.Remove(dot, 1);
        int pointPos = (dot < 0 ? mantissa.Length : dot) + exp; // decimal point position within digits
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') { lead++; pointPos--; }
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        int sciExp = pointPos - 1;
        string body;
        if (sciExp >= -4 && sciExp < 16)
        {
            if (pointPos <= 0) body = "0." + new string('0', -pointPos) + digits;
            else if (pointPos >= digits.Length) body = digits + new string('0', pointPos - digits.Length) + ".0";
            else body = digits[..pointPos] + "." + digits[pointPos..];
        }
        else
        {
            string m = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            body = m + "e" + (sciExp < 0 ? "-" : "+") + Math.Abs(sciExp).ToString("00", CultureInfo.InvariantCulture);
        }
        return negative ? "-" + body : body;
    }
}
