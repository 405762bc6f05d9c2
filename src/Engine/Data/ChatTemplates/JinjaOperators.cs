using System.Text;

namespace Engine.Data.ChatTemplates;

/// <summary>Arithmetic, concatenation and comparison with Python's rules (int/float promotion, str + str,
/// list + list, str * int, true division, floor division and modulo with the divisor's sign).</summary>
internal static class JinjaOperators
{
    public static object? Binary(JinjaRenderer r, string op, object? a, object? b, SourcePos pos)
    {
        if (op == "~") return JinjaValue.Str(a) + JinjaValue.Str(b);
        if (a is Undefined ua) throw r.Fail(pos, $"'{ua.Name}' is undefined");
        if (b is Undefined ub) throw r.Fail(pos, $"'{ub.Name}' is undefined");
        bool ints = a is long or bool && b is long or bool;
        bool nums = JinjaValue.IsNumber(a) && JinjaValue.IsNumber(b);
        try
        {
            switch (op)
            {
                case "+":
                    if (ints) return checked(AsLong(a) + AsLong(b));
                    if (nums) return JinjaValue.ToDouble(a) + JinjaValue.ToDouble(b);
                    if (a is string sa && b is string sb) return CheckLength(r, (long)sa.Length + sb.Length, pos) ? sa + sb : null;
                    if (a is object?[] ta && b is object?[] tb) return ta.Concat(tb).ToArray();
                    if (a is List<object?> la && b is List<object?> lb)
                    {
                        CheckLength(r, (long)la.Count + lb.Count, pos);
                        return la.Concat(lb).ToList();
                    }
                    break;
                case "-":
                    if (ints) return checked(AsLong(a) - AsLong(b));
                    if (nums) return JinjaValue.ToDouble(a) - JinjaValue.ToDouble(b);
                    break;
                case "*":
                    if (ints) return checked(AsLong(a) * AsLong(b));
                    if (nums) return JinjaValue.ToDouble(a) * JinjaValue.ToDouble(b);
                    if (a is string s1 && b is long or bool) return Repeat(r, s1, AsLong(b), pos);
                    if (b is string s2 && a is long or bool) return Repeat(r, s2, AsLong(a), pos);
                    if (a is List<object?> l1 && b is long or bool) return RepeatList(r, l1, AsLong(b), pos);
                    break;
                case "/":
                    if (nums)
                    {
                        double d = JinjaValue.ToDouble(b);
                        if (d == 0) throw r.Fail(pos, "division by zero");
                        return JinjaValue.ToDouble(a) / d;
                    }
                    break;
                case "//":
                    if (ints)
                    {
                        long y = AsLong(b);
                        if (y == 0) throw r.Fail(pos, "integer division by zero");
                        return FloorDiv(AsLong(a), y);
                    }
                    if (nums)
                    {
                        double y = JinjaValue.ToDouble(b);
                        if (y == 0) throw r.Fail(pos, "float floor division by zero");
                        return Math.Floor(JinjaValue.ToDouble(a) / y);
                    }
                    break;
                case "%":
                    if (ints)
                    {
                        long y = AsLong(b);
                        if (y == 0) throw r.Fail(pos, "integer modulo by zero");
                        long x = AsLong(a);
                        return x - FloorDiv(x, y) * y;
                    }
                    if (nums)
                    {
                        double x = JinjaValue.ToDouble(a), y = JinjaValue.ToDouble(b);
                        if (y == 0) throw r.Fail(pos, "float modulo by zero");
                        return x - Math.Floor(x / y) * y;
                    }
                    if (a is string) throw r.Fail(pos, "printf-style string formatting ('…' % value) is not supported");
                    break;
                case "**":
                    if (ints && AsLong(b) >= 0)
                    {
                        long result = 1, x = AsLong(a);
                        for (long k = AsLong(b); k > 0; k--) result = checked(result * x);
                        return result;
                    }
                    if (nums) return Math.Pow(JinjaValue.ToDouble(a), JinjaValue.ToDouble(b));
                    break;
            }
        }
        catch (OverflowException)
        {
            throw r.Fail(pos, $"integer overflow in '{op}'");
        }
        throw r.Fail(pos, $"unsupported operand types for {op}: '{JinjaValue.TypeName(a)}' and '{JinjaValue.TypeName(b)}'");
    }

    static long AsLong(object? v) => v is bool b ? (b ? 1 : 0) : (long)v!;

    static long FloorDiv(long x, long y)
    {
        long q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
        return q;
    }

    static bool CheckLength(JinjaRenderer r, long length, SourcePos pos)
    {
        if (length > JinjaRenderer.MaxOutputChars) throw r.Fail(pos, $"a value longer than {JinjaRenderer.MaxOutputChars} would be built");
        return true;
    }

    static string Repeat(JinjaRenderer r, string s, long n, SourcePos pos)
    {
        if (n <= 0 || s.Length == 0) return "";
        CheckLength(r, s.Length * Math.Min(n, JinjaRenderer.MaxOutputChars + 1L), pos);
        var sb = new StringBuilder(s.Length * (int)n);
        for (long i = 0; i < n; i++) sb.Append(s);
        return sb.ToString();
    }

    static List<object?> RepeatList(JinjaRenderer r, List<object?> l, long n, SourcePos pos)
    {
        if (n <= 0 || l.Count == 0) return new List<object?>();
        if (l.Count * Math.Min(n, JinjaRenderer.MaxSequenceLength + 1L) > JinjaRenderer.MaxSequenceLength)
            throw r.Fail(pos, $"a list longer than {JinjaRenderer.MaxSequenceLength} would be built");
        var result = new List<object?>();
        for (long i = 0; i < n; i++) result.AddRange(l);
        return result;
    }

    public static bool Compare(JinjaRenderer r, string op, object? a, object? b, SourcePos pos)
    {
        switch (op)
        {
            case "==": return JinjaValue.PyEquals(a, b);
            case "!=": return !JinjaValue.PyEquals(a, b);
            case "in": return Contains(r, b, a, pos);
            case "not in": return !Contains(r, b, a, pos);
        }
        int c = Order(r, a, b, op, pos);
        return op switch { "<" => c < 0, ">" => c > 0, "<=" => c <= 0, _ => c >= 0 };
    }

    static int Order(JinjaRenderer r, object? a, object? b, string op, SourcePos pos)
    {
        if (JinjaValue.IsNumber(a) && JinjaValue.IsNumber(b)) return JinjaValue.ToDouble(a).CompareTo(JinjaValue.ToDouble(b));
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb);
        if (a is IList<object?> la && b is IList<object?> lb)
        {
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (JinjaValue.PyEquals(la[i], lb[i])) continue;
                return Order(r, la[i], lb[i], op, pos);
            }
            return la.Count.CompareTo(lb.Count);
        }
        if (a is Undefined ua) throw r.Fail(pos, $"'{ua.Name}' is undefined");
        if (b is Undefined ub) throw r.Fail(pos, $"'{ub.Name}' is undefined");
        throw r.Fail(pos, $"'{op}' is not supported between '{JinjaValue.TypeName(a)}' and '{JinjaValue.TypeName(b)}'");
    }

    public static bool Contains(JinjaRenderer r, object? container, object? item, SourcePos pos) => container switch
    {
        string s when item is string sub => s.Contains(sub, StringComparison.Ordinal),
        string => throw r.Fail(pos, $"'in <string>' requires a string on the left, not '{JinjaValue.TypeName(item)}'"),
        IList<object?> l => l.Any(x => JinjaValue.PyEquals(x, item)),
        JinjaDict d => item is not null and not Undefined && d.ContainsKey(item),
        Undefined => false,
        _ => throw r.Fail(pos, $"argument of type '{JinjaValue.TypeName(container)}' is not iterable"),
    };
}
