using System.Globalization;
using System.Text;

namespace Engine.Data.ChatTemplates;

/// <summary>The filters (<c>value | name(args)</c>) and tests (<c>value is name</c>) that chat templates use,
/// with Jinja's semantics; <c>tojson</c> is transformers' override (json.dumps, non-ASCII kept).</summary>
internal static class JinjaFilters
{
    delegate object? FilterBody(JinjaRenderer r, object? value, JinjaArgs a);
    delegate bool TestBody(JinjaRenderer r, object? value, JinjaArgs a);

    static readonly Dictionary<string, FilterBody> Filters = new(StringComparer.Ordinal)
    {
        ["trim"] = (r, v, a) => JinjaMembers.PyStrip(AsString(r, v, a, "trim"), a.OptionalString(0, "chars"), true, true),
        ["length"] = Length,
        ["count"] = Length,
        ["upper"] = (r, v, a) => AsString(r, v, a, "upper").ToUpperInvariant(),
        ["lower"] = (r, v, a) => AsString(r, v, a, "lower").ToLowerInvariant(),
        ["capitalize"] = (r, v, a) => JinjaMembers.Capitalize(AsString(r, v, a, "capitalize")),
        ["title"] = (r, v, a) => JinjaMembers.Title(AsString(r, v, a, "title")),
        ["string"] = (_, v, _) => JinjaValue.Str(v),
        ["safe"] = (_, v, _) => v,
        ["escape"] = Escape,
        ["e"] = Escape,
        ["tojson"] = (r, v, a) => JinjaJson.Dumps(r, v, a),
        ["default"] = Default,
        ["d"] = Default,
        ["first"] = (r, v, a) => r.Iterate(v, a.Pos) is { Count: > 0 } l ? l[0] : new Undefined("first"),
        ["last"] = (r, v, a) => r.Iterate(v, a.Pos) is { Count: > 0 } l ? l[^1] : new Undefined("last"),
        ["join"] = Join,
        ["list"] = (r, v, a) => r.Iterate(v, a.Pos),
        ["items"] = (r, v, a) => v switch
        {
            JinjaDict d => d.Pairs.Select(p => (object?)new object?[] { p.Key, p.Value }).ToList(),
            Undefined => new List<object?>(),
            _ => throw r.Fail(a.Pos, $"items: expected a dict, got {JinjaValue.TypeName(v)}"),
        },
        ["int"] = ToInt,
        ["float"] = ToFloat,
        ["abs"] = (r, v, a) => v switch
        {
            long l => (object)Math.Abs(l),
            double d => Math.Abs(d),
            bool b => b ? 1L : 0L,
            _ => throw r.Fail(a.Pos, $"abs: expected a number, got {JinjaValue.TypeName(v)}"),
        },
        ["round"] = Round,
        ["replace"] = (r, v, a) =>
        {
            string s = AsString(r, v, a, "replace"), old = a.RequiredString(0, "old"), rep = a.RequiredString(1, "new");
            long count = a.OptionalLong(2, "count", -1);
            return JinjaMembers.GetAttr(r, s, "replace", a.Pos) is JinjaCallable m
                ? m.Invoke(new List<object?> { old, rep, count }, new(), a.Pos) : null;
        },
        ["reverse"] = (r, v, a) => v is string s ? new string(s.Reverse().ToArray()) : Enumerable.Reverse(r.Iterate(v, a.Pos)).ToList(),
        ["unique"] = (r, v, a) =>
        {
            var result = new List<object?>();
            foreach (var x in r.Iterate(v, a.Pos))
                if (!result.Any(y => JinjaValue.PyEquals(x, y))) result.Add(x);
            return result;
        },
        ["sort"] = Sort,
        ["min"] = (r, v, a) => Extreme(r, v, a, -1),
        ["max"] = (r, v, a) => Extreme(r, v, a, 1),
        ["sum"] = Sum,
        ["map"] = Map,
        ["select"] = (r, v, a) => Select(r, v, a, byAttribute: false, keep: true),
        ["reject"] = (r, v, a) => Select(r, v, a, byAttribute: false, keep: false),
        ["selectattr"] = (r, v, a) => Select(r, v, a, byAttribute: true, keep: true),
        ["rejectattr"] = (r, v, a) => Select(r, v, a, byAttribute: true, keep: false),
        ["indent"] = Indent,
        ["center"] = (r, v, a) =>
        {
            string s = JinjaValue.Str(v);
            long width = a.OptionalLong(0, "width", 80);
            if (width <= s.Length) return s;
            int total = (int)Math.Min(width, JinjaRenderer.MaxOutputChars) - s.Length, left = total / 2 + (total & (int)width & 1);
            return new string(' ', left) + s + new string(' ', total - left);
        },
    };

    static readonly Dictionary<string, TestBody> Tests = new(StringComparer.Ordinal)
    {
        ["defined"] = (_, v, _) => v is not Undefined,
        ["undefined"] = (_, v, _) => v is Undefined,
        ["none"] = (_, v, _) => v is null,
        ["string"] = (_, v, _) => v is string,
        ["number"] = (_, v, _) => v is long or double or bool,
        ["integer"] = (_, v, _) => v is long,
        ["float"] = (_, v, _) => v is double,
        ["boolean"] = (_, v, _) => v is bool,
        ["true"] = (_, v, _) => v is true,
        ["false"] = (_, v, _) => v is false,
        ["mapping"] = (_, v, _) => v is JinjaDict,
        ["sequence"] = (_, v, _) => v is string or IList<object?> or JinjaDict,
        ["iterable"] = (_, v, _) => v is string or IList<object?> or JinjaDict,
        ["callable"] = (_, v, _) => v is JinjaCallable,
        ["even"] = (r, v, a) => AsLong(r, v, a, "even") % 2 == 0,
        ["odd"] = (r, v, a) => AsLong(r, v, a, "odd") % 2 != 0,
        ["divisibleby"] = (r, v, a) =>
        {
            var n = a.Required(0, "num");
            long d = n is long l ? l : throw r.Fail(a.Pos, "divisibleby: expected an integer");
            return d != 0 && AsLong(r, v, a, "divisibleby") % d == 0;
        },
        ["eq"] = (_, v, a) => JinjaValue.PyEquals(v, a.Required(0, "other")),
        ["equalto"] = (_, v, a) => JinjaValue.PyEquals(v, a.Required(0, "other")),
        ["=="] = (_, v, a) => JinjaValue.PyEquals(v, a.Required(0, "other")),
        ["ne"] = (_, v, a) => !JinjaValue.PyEquals(v, a.Required(0, "other")),
        ["!="] = (_, v, a) => !JinjaValue.PyEquals(v, a.Required(0, "other")),
        ["lt"] = (r, v, a) => JinjaOperators.Compare(r, "<", v, a.Required(0, "other"), a.Pos),
        ["le"] = (r, v, a) => JinjaOperators.Compare(r, "<=", v, a.Required(0, "other"), a.Pos),
        ["gt"] = (r, v, a) => JinjaOperators.Compare(r, ">", v, a.Required(0, "other"), a.Pos),
        ["ge"] = (r, v, a) => JinjaOperators.Compare(r, ">=", v, a.Required(0, "other"), a.Pos),
        ["in"] = (r, v, a) => JinjaOperators.Contains(r, a.Required(0, "seq"), v, a.Pos),
        ["sameas"] = (_, v, a) =>
        {
            var o = a.Required(0, "other");
            return v is null || o is null || v is bool || o is bool ? Equals(v, o) && v?.GetType() == o?.GetType() : ReferenceEquals(v, o);
        },
        ["lower"] = (_, v, _) => v is string s && s == s.ToLowerInvariant(),
        ["upper"] = (_, v, _) => v is string s && s == s.ToUpperInvariant(),
        ["escaped"] = (_, _, _) => false,
    };

    public static bool IsFilter(string name) => Filters.ContainsKey(name);
    public static bool IsTest(string name) => Tests.ContainsKey(name);

    public static object? Filter(JinjaRenderer r, string name, object? value, List<object?> args, Dictionary<string, object?> kwargs, SourcePos pos)
    {
        if (!Filters.TryGetValue(name, out var f)) throw r.Fail(pos, $"unknown filter '{name}'");
        var a = new JinjaArgs(r, $"filter '{name}'", args, kwargs, pos);
        var result = f(r, value, a);
        a.Done();
        return result;
    }

    public static bool Test(JinjaRenderer r, string name, object? value, List<object?> args, Dictionary<string, object?> kwargs, SourcePos pos)
    {
        if (!Tests.TryGetValue(name, out var t)) throw r.Fail(pos, $"unknown test '{name}'");
        var a = new JinjaArgs(r, $"test '{name}'", args, kwargs, pos);
        bool result = t(r, value, a);
        a.Done();
        return result;
    }

    static string AsString(JinjaRenderer r, object? v, JinjaArgs a, string filter) => v switch
    {
        string s => s,
        Undefined => "",
        _ => JinjaValue.Str(v),
    };

    static long AsLong(JinjaRenderer r, object? v, JinjaArgs a, string test) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw r.Fail(a.Pos, $"{test}: expected an integer, got {JinjaValue.TypeName(v)}"),
    };

    static object? Length(JinjaRenderer r, object? v, JinjaArgs a) => v switch
    {
        string s => (long)s.Length,
        IList<object?> l => (long)l.Count,
        JinjaDict d => (long)d.Count,
        Undefined => 0L,
        _ => throw r.Fail(a.Pos, $"length: a {JinjaValue.TypeName(v)} has no length"),
    };

    /// <summary>markupsafe's escape: &amp; &lt; &gt; ' ".</summary>
    static object? Escape(JinjaRenderer r, object? v, JinjaArgs a)
    {
        var sb = new StringBuilder();
        foreach (char c in JinjaValue.Str(v))
            sb.Append(c switch { '&' => "&amp;", '<' => "&lt;", '>' => "&gt;", '\'' => "&#39;", '"' => "&#34;", _ => c.ToString() });
        return sb.ToString();
    }

    static object? Default(JinjaRenderer r, object? v, JinjaArgs a)
    {
        var fallback = a.Optional(0, "default_value", "");
        bool boolean = a.OptionalBool(1, "boolean", false);
        return v is Undefined || (boolean && !JinjaValue.Truthy(v)) ? fallback : v;
    }

    static object? Join(JinjaRenderer r, object? v, JinjaArgs a)
    {
        string sep = a.OptionalString(0, "d") ?? "";
        var attribute = a.Optional(1, "attribute", null);
        var items = r.Iterate(v, a.Pos);
        if (attribute != null) items = items.Select(x => Attribute(r, x, attribute, a)).ToList();
        return string.Join(sep, items.Select(JinjaValue.Str));
    }

    static object? Attribute(JinjaRenderer r, object? item, object? attribute, JinjaArgs a)
    {
        object? cur = item;
        if (attribute is long index) return JinjaMembers.GetItem(r, cur, index, a.Pos);
        foreach (var part in JinjaValue.Str(attribute).Split('.'))
            cur = long.TryParse(part, out long i) ? JinjaMembers.GetItem(r, cur, i, a.Pos) : JinjaMembers.GetItem(r, cur, part, a.Pos);
        return cur;
    }

    static object? ToInt(JinjaRenderer r, object? v, JinjaArgs a)
    {
        long fallback = a.OptionalLong(0, "default", 0);
        return v switch
        {
            long l => l,
            bool b => b ? 1L : 0L,
            double d when double.IsFinite(d) && Math.Abs(d) < 9.2e18 => (long)Math.Truncate(d),
            string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l) => l,
            string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d)
                          && double.IsFinite(d) && Math.Abs(d) < 9.2e18 => (long)Math.Truncate(d),
            _ => fallback,
        };
    }

    static object? ToFloat(JinjaRenderer r, object? v, JinjaArgs a)
    {
        var fallback = a.Optional(0, "default", 0.0);
        return v switch
        {
            long l => (double)l,
            bool b => b ? 1.0 : 0.0,
            double d => d,
            string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
            _ => fallback,
        };
    }

    static object? Round(JinjaRenderer r, object? v, JinjaArgs a)
    {
        long precision = a.OptionalLong(0, "precision", 0);
        string method = a.OptionalString(1, "method") ?? "common";
        if (!JinjaValue.IsNumber(v)) throw r.Fail(a.Pos, $"round: expected a number, got {JinjaValue.TypeName(v)}");
        double x = JinjaValue.ToDouble(v), scale = Math.Pow(10, precision);
        return method switch
        {
            "common" => Math.Round(x * scale, MidpointRounding.AwayFromZero) / scale,
            "ceil" => Math.Ceiling(x * scale) / scale,
            "floor" => Math.Floor(x * scale) / scale,
            _ => throw r.Fail(a.Pos, "round: method must be common, ceil or floor"),
        };
    }

    static object? Sort(JinjaRenderer r, object? v, JinjaArgs a)
    {
        bool reverse = a.OptionalBool(0, "reverse", false);
        bool caseSensitive = a.OptionalBool(1, "case_sensitive", false);
        var attribute = a.Optional(2, "attribute", null);
        var items = r.Iterate(v, a.Pos);
        object? Key(object? x)
        {
            var k = attribute is null ? x : Attribute(r, x, attribute, a);
            return !caseSensitive && k is string s ? s.ToLowerInvariant() : k;
        }
        var keyed = items.Select((x, i) => (Item: x, Key: Key(x), Index: i)).ToList();
        keyed.Sort((p, q) =>
        {
            int c = JinjaOperators.Compare(r, "<", p.Key, q.Key, a.Pos) ? -1 : JinjaOperators.Compare(r, ">", p.Key, q.Key, a.Pos) ? 1 : 0;
            return c != 0 ? (reverse ? -c : c) : p.Index.CompareTo(q.Index);
        });
        return keyed.Select(p => p.Item).ToList();
    }

    static object? Extreme(JinjaRenderer r, object? v, JinjaArgs a, int sign)
    {
        bool caseSensitive = a.OptionalBool(0, "case_sensitive", false);
        var attribute = a.Optional(1, "attribute", null);
        var items = r.Iterate(v, a.Pos);
        if (items.Count == 0) return new Undefined(sign < 0 ? "min" : "max");
        object? best = items[0], bestKey = null;
        bool first = true;
        foreach (var x in items)
        {
            var k = attribute is null ? x : Attribute(r, x, attribute, a);
            if (!caseSensitive && k is string s) k = s.ToLowerInvariant();
            if (first || JinjaOperators.Compare(r, sign < 0 ? "<" : ">", k, bestKey, a.Pos))
            {
                best = x;
                bestKey = k;
                first = false;
            }
        }
        return best;
    }

    static object? Sum(JinjaRenderer r, object? v, JinjaArgs a)
    {
        var attribute = a.Optional(0, "attribute", null);
        object? total = a.Optional(1, "start", 0L);
        foreach (var x in r.Iterate(v, a.Pos))
            total = JinjaOperators.Binary(r, "+", total, attribute is null ? x : Attribute(r, x, attribute, a), a.Pos);
        return total;
    }

    /// <summary>map(attribute='name') or map('filter', args…).</summary>
    static object? Map(JinjaRenderer r, object? v, JinjaArgs a)
    {
        var items = r.Iterate(v, a.Pos);
        if (a.Has(99, "attribute"))
        {
            var attribute = a.Optional(99, "attribute", null);
            var fallback = a.Optional(99, "default", null);
            bool hasDefault = a.Has(99, "default");
            return items.Select(x =>
            {
                var value = Attribute(r, x, attribute, a);
                return hasDefault && value is Undefined ? fallback : value;
            }).ToList();
        }
        string filter = a.RequiredString(0, "filter");
        var rest = a.Rest(1);
        return items.Select(x => Filter(r, filter, x, rest, new(), a.Pos)).ToList();
    }

    /// <summary>select/reject(test, args…) and selectattr/rejectattr(attribute, test, args…).</summary>
    static object? Select(JinjaRenderer r, object? v, JinjaArgs a, bool byAttribute, bool keep)
    {
        var items = r.Iterate(v, a.Pos);
        object? attribute = byAttribute ? a.Required(0, "attribute") : null;
        int testIndex = byAttribute ? 1 : 0;
        string? test = a.Has(testIndex, "test") ? a.OptionalString(testIndex, "test") : null;
        var rest = a.Rest(testIndex + 1);
        return items.Where(x =>
        {
            var subject = byAttribute ? Attribute(r, x, attribute, a) : x;
            bool passed = test is null ? JinjaValue.Truthy(subject) : Test(r, test, subject, rest, new(), a.Pos);
            return passed == keep;
        }).ToList();
    }

    static object? Indent(JinjaRenderer r, object? v, JinjaArgs a)
    {
        var width = a.Optional(0, "width", 4L);
        bool first = a.OptionalBool(1, "first", false), blank = a.OptionalBool(2, "blank", false);
        string pad = width is string ws ? ws : width is long n && n >= 0 && n < 10_000 ? new string(' ', (int)n)
            : throw r.Fail(a.Pos, "indent: width must be a small integer or a string");
        string s = JinjaValue.Str(v);
        var lines = s.Split('\n');
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Length; i++)
        {
            if (i > 0) sb.Append('\n');
            bool indent = (i > 0 || first) && (blank || lines[i].Length > 0);
            if (indent) sb.Append(pad);
            sb.Append(lines[i]);
        }
        return sb.ToString();
    }
}
