using System.Globalization;
using System.Text;

namespace Engine.Data.ChatTemplates;

/// <summary>The global functions transformers gives chat templates (raise_exception, strftime_now) and Jinja's
/// own (range, namespace, dict).</summary>
internal static class JinjaGlobals
{
    public static void AddTo(JinjaRenderer r, Func<DateTime> clock)
    {
        r.DefineGlobal("range", new JinjaCallable("range", (args, kwargs, pos) =>
        {
            var a = new JinjaArgs(r, "range", args, kwargs, pos);
            var values = a.Rest(0);
            a.Done();
            if (values.Count is < 1 or > 3 || values.Any(v => v is not (long or bool)))
                throw r.Fail(pos, "range takes 1 to 3 integers");
            long[] n = values.Select(v => v is bool b ? (b ? 1L : 0L) : (long)v!).ToArray();
            long start = n.Length > 1 ? n[0] : 0, stop = n.Length > 1 ? n[1] : n[0], step = n.Length > 2 ? n[2] : 1;
            if (step == 0) throw r.Fail(pos, "range step cannot be zero");
            long count = step > 0 ? Math.Max(0, (stop - start + step - 1) / step) : Math.Max(0, (start - stop - step - 1) / -step);
            if (count > JinjaRenderer.MaxSequenceLength) throw r.Fail(pos, $"range of {count} items exceeds the limit of {JinjaRenderer.MaxSequenceLength}");
            var list = new List<object?>((int)count);
            for (long i = 0; i < count; i++) list.Add(start + i * step);
            return list;
        }));
        r.DefineGlobal("namespace", new JinjaCallable("namespace", (args, kwargs, pos) =>
        {
            var ns = new JinjaNamespace();
            foreach (var arg in args)
            {
                if (arg is not JinjaDict d) throw r.Fail(pos, "namespace() takes a dict or keyword arguments");
                foreach (var (k, v) in d.Pairs) ns.Values[JinjaValue.Str(k)] = v;
            }
            foreach (var (k, v) in kwargs) ns.Values[k] = v;
            return ns;
        }));
        r.DefineGlobal("dict", new JinjaCallable("dict", (args, kwargs, pos) =>
        {
            if (args.Count > 0) throw r.Fail(pos, "dict() takes keyword arguments only here");
            var d = new JinjaDict();
            foreach (var (k, v) in kwargs) d.Set(k, v);
            return d;
        }));
        r.DefineGlobal("raise_exception", new JinjaCallable("raise_exception", (args, kwargs, pos) =>
        {
            string message = args.Count > 0 ? JinjaValue.Str(args[0]) : "(no message)";
            throw new EngineException($"chat template {r.Origin} rejected the conversation: {message} " +
                                      $"(raise_exception at line {pos.Line}, column {pos.Column})");
        }));
        r.DefineGlobal("strftime_now", new JinjaCallable("strftime_now", (args, kwargs, pos) =>
        {
            var a = new JinjaArgs(r, "strftime_now", args, kwargs, pos);
            string format = a.RequiredString(0, "format");
            a.Done();
            return Strftime(r, format, clock(), pos);
        }));
    }

    /// <summary>C strftime for the codes chat templates use (Llama 3.1 writes "%d %b %Y").</summary>
    static string Strftime(JinjaRenderer r, string format, DateTime t, SourcePos pos)
    {
        var c = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            char code = format[++i];
            sb.Append(code switch
            {
                'd' => t.ToString("dd", c),
                'm' => t.ToString("MM", c),
                'Y' => t.ToString("yyyy", c),
                'y' => t.ToString("yy", c),
                'b' => t.ToString("MMM", c),
                'B' => t.ToString("MMMM", c),
                'a' => t.ToString("ddd", c),
                'A' => t.ToString("dddd", c),
                'H' => t.ToString("HH", c),
                'I' => t.ToString("hh", c),
                'M' => t.ToString("mm", c),
                'S' => t.ToString("ss", c),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => t.DayOfYear.ToString("000", c),
                '%' => "%",
                _ => throw r.Fail(pos, $"strftime_now: unsupported format code '%{code}'"),
            });
        }
        return sb.ToString();
    }
}
