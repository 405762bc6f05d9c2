using System.Globalization;
using Engine.Util;

namespace Engine.Cli.Options;

/// <summary>A malformed command line: printed with the command's usage, exit code 2.</summary>
public sealed class UsageException : Exception
{
    public UsageException(string message) : base(message) { }
}

/// <summary>
/// One option of a command, declared once: its flag, value syntax, help, and how a value is read into the
/// command's settings record and the default shown from it. Help, parsing, TOML config keys and defaults all come
/// from this declaration.
/// </summary>
public sealed class CliOption<T>
{
    public required string Name { get; init; }
    /// <summary>Other accepted names (shown in help next to the name).</summary>
    public IReadOnlyList<string> Aliases { get; init; } = Array.Empty<string>();
    /// <summary>The value's placeholder in help ("N", "DIR"), or the choices; null for a flag.</summary>
    public string? ValueName { get; init; }
    public required string Help { get; init; }
    public bool Required { get; init; }
    /// <summary>A value this option accepts (tests use it to walk every option).</summary>
    public string? Sample { get; init; }
    /// <summary>A free-form tag a command can look options up by (e.g. the memory-planner knob it fixes).</summary>
    public object? Tag { get; init; }
    public bool IsFlag => ValueName is null;
    /// <summary>Applies a raw value (null for a flag given without one); <c>what</c> names the option or config key for errors.</summary>
    public required Func<T, string?, string, T> Apply { get; init; }
    /// <summary>The default as help shows it, read from the command's default settings; null: none shown.</summary>
    public Func<T, string?>? Default { get; init; }

    /// <summary>The same option on an outer record that holds this one's record.</summary>
    public CliOption<TOuter> Lift<TOuter>(Func<TOuter, T> get, Func<TOuter, T, TOuter> set) => new()
    {
        Name = Name, Aliases = Aliases, ValueName = ValueName, Help = Help, Required = Required, Sample = Sample, Tag = Tag,
        Apply = (outer, value, what) => set(outer, Apply(get(outer), value, what)),
        Default = Default is null ? null : outer => Default(get(outer)),
    };

    public CliOption<T> With(string? help = null, bool? required = null, object? tag = null, params string[] aliases) => new()
    {
        Name = Name, Aliases = aliases.Length > 0 ? aliases : Aliases, ValueName = ValueName, Help = help ?? Help, Required = required ?? Required,
        Sample = Sample, Tag = tag ?? Tag, Apply = Apply, Default = Default,
    };
}

/// <summary>Builders of <see cref="CliOption{T}"/> for each value type; each parses and range-checks its value once.</summary>
public static class Opt<T>
{
    static string Need(string? v, string what) => v ?? throw new UsageException($"{what} needs a value");

    static string Show(double v) => v.ToString("G", CultureInfo.InvariantCulture);

    public static int ParseInt(string? v, string what, int? min = null)
    {
        var s = Need(v, what);
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int x))
            throw new UsageException($"{what} expects an integer (got '{s}')");
        if (min is int m && x < m) throw new UsageException($"{what} must be at least {m} (got {x})");
        return x;
    }

    public static double ParseDouble(string? v, string what)
    {
        var s = Need(v, what);
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) || double.IsNaN(x))
            throw new UsageException($"{what} expects a number (got '{s}')");
        return x;
    }

    public static CliOption<T> Int(string name, string help, Func<T, int> get, Func<T, int, T> set, int? min = null, string valueName = "N") => new()
    {
        Name = name, ValueName = valueName, Help = help, Sample = (min ?? 1).ToString(CultureInfo.InvariantCulture),
        Apply = (t, v, what) => set(t, ParseInt(v, what, min)),
        Default = t => get(t).ToString(CultureInfo.InvariantCulture),
    };

    public static CliOption<T> OptionalInt(string name, string help, Func<T, int?> get, Func<T, int?, T> set, int? min = null, string valueName = "N") => new()
    {
        Name = name, ValueName = valueName, Help = help, Sample = (min ?? 1).ToString(CultureInfo.InvariantCulture),
        Apply = (t, v, what) => set(t, ParseInt(v, what, min)),
        Default = t => get(t)?.ToString(CultureInfo.InvariantCulture),
    };

    public static CliOption<T> Long(string name, string help, Func<T, long> get, Func<T, long, T> set, string valueName = "N") => new()
    {
        Name = name, ValueName = valueName, Help = help, Sample = "1",
        Apply = (t, v, what) =>
        {
            var s = Need(v, what);
            return long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long x) ? set(t, x)
                : throw new UsageException($"{what} expects an integer (got '{s}')");
        },
        Default = t => get(t).ToString(CultureInfo.InvariantCulture),
    };

    public static CliOption<T> Double(string name, string help, Func<T, double> get, Func<T, double, T> set, string valueName = "X") => new()
    {
        Name = name, ValueName = valueName, Help = help, Sample = "0.5",
        Apply = (t, v, what) => set(t, ParseDouble(v, what)),
        Default = t => Show(get(t)),
    };

    public static CliOption<T> OptionalDouble(string name, string help, Func<T, double?> get, Func<T, double?, T> set, string valueName = "X") => new()
    {
        Name = name, ValueName = valueName, Help = help, Sample = "0.5",
        Apply = (t, v, what) => set(t, ParseDouble(v, what)),
        Default = t => get(t) is double d ? Show(d) : null,
    };

    public static CliOption<T> String(string name, string help, Func<T, string?> get, Func<T, string, T> set, string valueName = "TEXT",
        bool required = false, string sample = "x") => new()
    {
        Name = name, ValueName = valueName, Help = help, Required = required, Sample = sample,
        Apply = (t, v, what) => set(t, Need(v, what)),
        Default = t => get(t) is { Length: > 0 } s ? s : null,
    };

    /// <summary>A flag: present (or true/on/1) sets it; false/off/0 clears it (config files write booleans).</summary>
    public static CliOption<T> Flag(string name, string help, Func<T, bool> get, Func<T, bool, T> set) => new()
    {
        Name = name, ValueName = null, Help = help,
        Apply = (t, v, what) => set(t, v switch
        {
            null or "true" or "on" or "1" => true,
            "false" or "off" or "0" => false,
            _ => throw new UsageException($"{what} is a flag (got '{v}')"),
        }),
        Default = null,
    };

    /// <summary>A boolean written as on|off (e.g. --checkpointing on).</summary>
    public static CliOption<T> OnOff(string name, string help, Func<T, bool> get, Func<T, bool, T> set) => new()
    {
        Name = name, ValueName = "on|off", Help = help, Sample = "on",
        Apply = (t, v, what) => set(t, Need(v, what) switch
        {
            "on" or "true" => true,
            "off" or "false" => false,
            var s => throw new UsageException($"{what} must be on or off (got '{s}')"),
        }),
        Default = t => get(t) ? "on" : "off",
    };

    /// <summary>An enum spelled as its <see cref="SpellingAttribute"/> says.</summary>
    public static CliOption<T> Enum<TEnum>(string name, string help, Func<T, TEnum> get, Func<T, TEnum, T> set) where TEnum : struct, System.Enum => new()
    {
        Name = name, ValueName = string.Join("|", Spelling.Names<TEnum>()), Help = help, Sample = Spelling.Names<TEnum>()[0],
        Apply = (t, v, what) => Spelling.TryParse<TEnum>(Need(v, what), out var e) ? set(t, e)
            : throw new UsageException($"{what} must be one of {string.Join(", ", Spelling.Names<TEnum>())} (got '{v}')"),
        Default = t => Spelling.Of(get(t)),
    };

    /// <summary>One of a fixed list of names, parsed by <paramref name="parse"/>.</summary>
    public static CliOption<T> Choice<TValue>(string name, string help, IReadOnlyList<string> choices, Func<string, TValue> parse,
        Func<T, string?> get, Func<T, TValue, T> set, bool required = false) => new()
    {
        Name = name, ValueName = string.Join("|", choices), Help = help, Required = required, Sample = choices[0],
        Apply = (t, v, what) => choices.Contains(Need(v, what)) ? set(t, parse(v!))
            : throw new UsageException($"{what} must be one of {string.Join(", ", choices)} (got '{v}')"),
        Default = get,
    };

    /// <summary>A comma-separated list, each item parsed by <paramref name="parseItem"/>.</summary>
    public static CliOption<T> List<TItem>(string name, string help, string valueName, Func<string, string, TItem> parseItem,
        Func<T, IReadOnlyList<TItem>> get, Func<T, IReadOnlyList<TItem>, T> set, string sample, Func<TItem, string>? show = null) => new()
    {
        Name = name, ValueName = valueName, Help = help, Sample = sample,
        Apply = (t, v, what) =>
        {
            var items = Need(v, what).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (items.Length == 0) throw new UsageException($"{what} is empty");
            return set(t, items.Select(i => parseItem(i, what)).ToList());
        },
        Default = t => string.Join(",", get(t).Select(i => show is null ? i?.ToString() : show(i))),
    };
}
