using System.Text;

namespace Engine.Data.ChatTemplates;

/// <summary>
/// Attribute access, subscripts, slices and the methods of str, dict and list that chat templates call.
/// As in Jinja, <c>obj.name</c> prefers a method and falls back to the item, <c>obj['name']</c> the reverse;
/// a missing attribute or item is undefined, while using an undefined value as an object is an error.
/// Methods that would mutate a list are refused, as transformers' immutable sandbox refuses them.
/// </summary>
internal static class JinjaMembers
{
    static readonly HashSet<string> MutatingListMethods = new(StringComparer.Ordinal)
        { "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "update", "setdefault", "popitem" };

    public static object? GetAttr(JinjaRenderer r, object? obj, string name, SourcePos pos)
    {
        switch (obj)
        {
            case Undefined u:
                throw r.Fail(pos, $"'{u.Name}' is undefined (reading its attribute '{name}')");
            case JinjaDict d:
                if (DictMethod(r, d, name) is { } dm) return dm;
                return d.TryGet(name, out var v) ? v : new Undefined(name);
            case string s:
                return StringMethod(r, s, name) ?? (object)new Undefined(name);
            case IList<object?> l:
                if (MutatingListMethods.Contains(name))
                    throw r.Fail(pos, $"templates cannot modify lists ('{name}' is refused, as in transformers' sandbox)");
                return ListMethod(l, name) ?? (object)new Undefined(name);
            case JinjaNamespace ns:
                return ns.Values.TryGetValue(name, out var nv) ? nv : new Undefined(name);
            case LoopContext loop:
                return LoopAttr(loop, name) ?? new Undefined(name);
            default:
                return new Undefined(name);
        }
    }

    public static object? GetItem(JinjaRenderer r, object? obj, object? key, SourcePos pos)
    {
        switch (obj)
        {
            case Undefined u:
                throw r.Fail(pos, $"'{u.Name}' is undefined (reading item {JinjaValue.Repr(key)})");
            case IList<object?> l when key is long or bool:
            {
                long i = key is bool b ? (b ? 1 : 0) : (long)key;
                if (i < 0) i += l.Count;
                return i >= 0 && i < l.Count ? l[(int)i] : new Undefined($"{JinjaValue.Repr(key)}");
            }
            case string s when key is long or bool:
            {
                long i = key is bool b ? (b ? 1 : 0) : (long)key;
                if (i < 0) i += s.Length;
                return i >= 0 && i < s.Length ? s[(int)i].ToString() : new Undefined($"{JinjaValue.Repr(key)}");
            }
            case JinjaDict d when key is not null and not Undefined:
                if (d.TryGet(key, out var v)) return v;
                return key is string name ? GetAttr(r, obj, name, pos) : new Undefined(JinjaValue.Repr(key));
        }
        if (key is string attr && obj is JinjaNamespace or LoopContext or string or IList<object?>) return GetAttr(r, obj, attr, pos);
        return new Undefined(JinjaValue.Repr(key));
    }

    public static object? Slice(JinjaRenderer r, object? obj, object? start, object? stop, object? step, SourcePos pos)
    {
        if (obj is Undefined u) throw r.Fail(pos, $"'{u.Name}' is undefined (slicing it)");
        int length = obj switch
        {
            string s => s.Length,
            IList<object?> l => l.Count,
            _ => throw r.Fail(pos, $"a {JinjaValue.TypeName(obj)} cannot be sliced"),
        };
        long st = step is null ? 1 : AsIndex(r, step, pos);
        if (st == 0) throw r.Fail(pos, "slice step cannot be zero");
        var indices = SliceIndices(length, start is null ? null : AsIndex(r, start, pos), stop is null ? null : AsIndex(r, stop, pos), st);
        if (obj is string str)
        {
            var sb = new StringBuilder();
            foreach (int i in indices) sb.Append(str[i]);
            return sb.ToString();
        }
        var list = (IList<object?>)obj!;
        var picked = indices.Select(i => list[i]).ToList();
        return obj is object?[] ? picked.ToArray() : picked;
    }

    static long AsIndex(JinjaRenderer r, object? v, SourcePos pos) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        null => throw r.Fail(pos, "internal: null index"),
        _ => throw r.Fail(pos, $"slice indices must be integers, not '{JinjaValue.TypeName(v)}'"),
    };

    /// <summary>Python's slice.indices: clamp start/stop into range for the step's direction.</summary>
    static IEnumerable<int> SliceIndices(int length, long? start, long? stop, long step)
    {
        long lo, hi;
        if (step > 0)
        {
            lo = start is long a ? (a < 0 ? Math.Max(0, a + length) : Math.Min(a, length)) : 0;
            hi = stop is long b ? (b < 0 ? Math.Max(0, b + length) : Math.Min(b, length)) : length;
            for (long i = lo; i < hi; i += step) yield return (int)i;
        }
        else
        {
            lo = start is long a ? (a < 0 ? Math.Max(-1, a + length) : Math.Min(a, length - 1)) : length - 1;
            hi = stop is long b ? (b < 0 ? Math.Max(-1, b + length) : Math.Min(b, length - 1)) : -1;
            for (long i = lo; i > hi; i += step) yield return (int)i;
        }
    }

    static object? LoopAttr(LoopContext loop, string name) => name switch
    {
        "index" => (long)loop.Index0 + 1,
        "index0" => (long)loop.Index0,
        "revindex" => (long)(loop.Length - loop.Index0),
        "revindex0" => (long)(loop.Length - loop.Index0 - 1),
        "first" => loop.Index0 == 0,
        "last" => loop.Index0 == loop.Length - 1,
        "length" => (long)loop.Length,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => loop.Index0 > 0 ? loop.Items[loop.Index0 - 1] : new Undefined("previtem"),
        "nextitem" => loop.Index0 < loop.Length - 1 ? loop.Items[loop.Index0 + 1] : new Undefined("nextitem"),
        "cycle" => new JinjaCallable("loop.cycle", (args, _, _) => args.Count == 0 ? null : args[loop.Index0 % args.Count]),
        _ => null,
    };

    static JinjaCallable? DictMethod(JinjaRenderer r, JinjaDict d, string name) => name switch
    {
        "items" => new JinjaCallable("items", (_, _, _) => d.Pairs.Select(p => (object?)new object?[] { p.Key, p.Value }).ToList()),
        "keys" => new JinjaCallable("keys", (_, _, _) => d.Keys.Select(k => (object?)k).ToList()),
        "values" => new JinjaCallable("values", (_, _, _) => d.Pairs.Select(p => p.Value).ToList()),
        "get" => new JinjaCallable("get", (args, kwargs, pos) =>
        {
            var a = new JinjaArgs(r, "dict.get", args, kwargs, pos);
            var key = a.Required(0, "key");
            var fallback = a.Optional(1, "default", null);
            a.Done();
            return key is not null and not Undefined && d.TryGet(key, out var v) ? v : fallback;
        }),
        _ => null,
    };

    static JinjaCallable? ListMethod(IList<object?> l, string name) => name switch
    {
        "count" => new JinjaCallable("count", (args, _, _) => (long)l.Count(x => args.Count > 0 && JinjaValue.PyEquals(x, args[0]))),
        "index" => new JinjaCallable("index", (args, _, pos) =>
        {
            for (int i = 0; i < l.Count; i++) if (args.Count > 0 && JinjaValue.PyEquals(l[i], args[0])) return (long)i;
            return new Undefined("index");
        }),
        _ => null,
    };

    static JinjaCallable? StringMethod(JinjaRenderer r, string s, string name)
    {
        JinjaCallable M(Func<JinjaArgs, object?> body) => new(name, (args, kwargs, pos) =>
        {
            var a = new JinjaArgs(r, "str." + name, args, kwargs, pos);
            var result = body(a);
            a.Done();
            return result;
        });
        return name switch
        {
            "strip" => M(a => PyStrip(s, a.OptionalString(0, "chars"), true, true)),
            "lstrip" => M(a => PyStrip(s, a.OptionalString(0, "chars"), true, false)),
            "rstrip" => M(a => PyStrip(s, a.OptionalString(0, "chars"), false, true)),
            "upper" => M(_ => s.ToUpperInvariant()),
            "lower" => M(_ => s.ToLowerInvariant()),
            "title" => M(_ => Title(s)),
            "capitalize" => M(_ => Capitalize(s)),
            "startswith" => M(a => Affix(r, a, s, true)),
            "endswith" => M(a => Affix(r, a, s, false)),
            "split" => M(a => Split(r, a, s, a.OptionalString(0, "sep"), a.OptionalLong(1, "maxsplit", -1))),
            "splitlines" => M(_ => SplitLines(s)),
            "replace" => M(a => Replace(s, a.RequiredString(0, "old"), a.RequiredString(1, "new"), a.OptionalLong(2, "count", -1))),
            "find" => M(a => (long)s.IndexOf(a.RequiredString(0, "sub"), StringComparison.Ordinal)),
            "rfind" => M(a => (long)s.LastIndexOf(a.RequiredString(0, "sub"), StringComparison.Ordinal)),
            "count" => M(a => (long)CountOccurrences(s, a.RequiredString(0, "sub"))),
            "join" => M(a => string.Join(s, r.Iterate(a.Required(0, "iterable"), a.Pos).Select(JinjaValue.Str))),
            "isdigit" => M(_ => s.Length > 0 && s.All(char.IsDigit)),
            "isspace" => M(_ => s.Length > 0 && s.All(char.IsWhiteSpace)),
            _ => null,
        };
    }

    static bool Affix(JinjaRenderer r, JinjaArgs a, string s, bool prefix)
    {
        var arg = a.Required(0, prefix ? "prefix" : "suffix");
        IEnumerable<object?> options = arg is object?[] t ? t : new[] { arg };
        foreach (var o in options)
        {
            if (o is not string x) throw r.Fail(a.Pos, $"{(prefix ? "startswith" : "endswith")} takes a string or a tuple of strings");
            if (prefix ? s.StartsWith(x, StringComparison.Ordinal) : s.EndsWith(x, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    /// <summary>Python str.strip: whitespace by default (str.isspace), else any of <paramref name="chars"/>.</summary>
    public static string PyStrip(string s, string? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars is null ? char.IsWhiteSpace : chars.Contains;
        int a = 0, b = s.Length;
        if (left) while (a < b && strip(s[a])) a++;
        if (right) while (b > a && strip(s[b - 1])) b--;
        return s[a..b];
    }

    static List<object?> SplitLines(string s)
    {
        var lines = s.Split('\n').Select(x => (object?)x).ToList();
        if (s.Length == 0 || s.EndsWith('\n')) lines.RemoveAt(lines.Count - 1);
        return lines;
    }

    static List<object?> Split(JinjaRenderer r, JinjaArgs a, string s, string? sep, long maxSplit)
    {
        var parts = new List<object?>();
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (maxSplit >= 0 && parts.Count == maxSplit)
                {
                    parts.Add(s[i..].TrimEnd());
                    break;
                }
                int j = i;
                while (j < s.Length && !char.IsWhiteSpace(s[j])) j++;
                parts.Add(s[i..j]);
                i = j;
            }
            return parts;
        }
        if (sep.Length == 0) throw r.Fail(a.Pos, "str.split: empty separator");
        int start = 0;
        while (maxSplit < 0 || parts.Count < maxSplit)
        {
            int k = s.IndexOf(sep, start, StringComparison.Ordinal);
            if (k < 0) break;
            parts.Add(s[start..k]);
            start = k + sep.Length;
        }
        parts.Add(s[start..]);
        return parts;
    }

    static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0) return old.Length == 0 ? s : s.Replace(old, replacement, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int start = 0;
        for (long n = 0; n < count && old.Length > 0; n++)
        {
            int k = s.IndexOf(old, start, StringComparison.Ordinal);
            if (k < 0) break;
            sb.Append(s, start, k - start).Append(replacement);
            start = k + old.Length;
        }
        return sb.Append(s, start, s.Length - start).ToString();
    }

    static int CountOccurrences(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        int n = 0;
        for (int k = 0; (k = s.IndexOf(sub, k, StringComparison.Ordinal)) >= 0; k += sub.Length) n++;
        return n;
    }

    public static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }
        return sb.ToString();
    }
}
