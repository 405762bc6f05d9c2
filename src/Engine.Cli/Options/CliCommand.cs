using System.Globalization;
using System.Text;

namespace Engine.Cli.Options;

/// <summary>Where a command writes: the process's console, or writers a test captures.</summary>
public sealed record CliContext(TextWriter Out, TextWriter Err, bool Interactive)
{
    public static CliContext FromConsole() => new(Console.Out, Console.Error, !Console.IsErrorRedirected);
}

/// <summary>One `engine NAME ...` command, as the dispatcher and the tests see it.</summary>
public interface ICliCommand
{
    /// <summary>The words that select this command, e.g. "generate" or "data inspect".</summary>
    string Name { get; }
    string Summary { get; }
    /// <summary>Every option name the command accepts (aliases included, with their option's main name), with a sample value (null for flags).</summary>
    IReadOnlyList<AcceptedOption> AcceptedOptions { get; }
    /// <summary>The positional argument's placeholder, if the command takes one.</summary>
    string? Positional { get; }
    bool AcceptsConfig { get; }
    string Usage { get; }
    string Help();
    /// <summary>Parses the arguments (and a --config file) without running; throws on anything it would refuse.</summary>
    void Check(string[] args);
    int Run(string[] args, CliContext context);
}

/// <summary>A name a command accepts: the option's own name or an alias of <paramref name="Primary"/>.</summary>
public sealed record AcceptedOption(string Name, string Primary, string? Sample, bool Required);

/// <summary>What parsing produced: the settings record, and which options were given (on the command line or in --config).</summary>
/// <param name="Args">the command's own arguments as given</param>
public sealed record Parsed<T>(T Value, IReadOnlySet<string> Given, IReadOnlyList<string> Positionals, IReadOnlyList<string> Args);

/// <summary>
/// A command over a settings record <typeparamref name="T"/>: its options are declared once in <see cref="Options"/>,
/// and usage, help, parsing, the --config TOML keys and the defaults shown all come from that list.
/// </summary>
public abstract class CliCommand<T> : ICliCommand
{
    public const string ConfigOption = "config";

    public abstract string Name { get; }
    public abstract string Summary { get; }
    /// <summary>The settings before any option is applied (and the defaults help shows).</summary>
    protected abstract T Defaults { get; }
    protected abstract IReadOnlyList<CliOption<T>> Options { get; }
    public virtual string? Positional => null;
    /// <summary>Whether `--config FILE.toml` may supply the same options as keys.</summary>
    public virtual bool AcceptsConfig => false;
    protected abstract int Execute(Parsed<T> parsed, CliContext context);

    IReadOnlyList<CliOption<T>>? _options;
    IReadOnlyList<CliOption<T>> All => _options ??= Options;

    public IReadOnlyList<AcceptedOption> AcceptedOptions =>
        All.SelectMany(o => o.Aliases.Prepend(o.Name).Select(n => new AcceptedOption(n, o.Name, o.Sample, o.Required && n == o.Name)))
           .Concat(AcceptsConfig ? new[] { new AcceptedOption(ConfigOption, ConfigOption, "FILE.toml", false) } : Array.Empty<AcceptedOption>())
           .ToList();

    public string Usage
    {
        get
        {
            var required = All.Where(o => o.Required).Select(o => $"--{o.Name}{(o.IsFlag ? "" : " " + o.ValueName)}");
            return $"engine {Name}{(Positional is null ? "" : " " + Positional)}{string.Concat(required.Select(r => " " + r))} [options]";
        }
    }

    public string Help()
    {
        var defaults = Defaults;
        var sb = new StringBuilder();
        sb.AppendLine($"usage: {Usage}").AppendLine().AppendLine(Summary).AppendLine().AppendLine("options:");
        var rows = All.Select(o =>
        {
            string names = string.Join(", ", o.Aliases.Prepend(o.Name).Select(n => "--" + n)) + (o.IsFlag ? "" : " " + o.ValueName);
            string? def = o.Required ? null : o.Default?.Invoke(defaults);
            string text = o.Help + (o.Required ? " (required)" : def is null ? "" : $" (default: {def})");
            return (names, text);
        }).ToList();
        if (AcceptsConfig) rows.Add(($"--{ConfigOption} FILE.toml", "read options from a TOML file: its keys are the option names (- or _); the command line wins"));
        int width = Math.Min(40, rows.Max(r => r.names.Length));
        foreach (var (names, text) in rows)
            sb.AppendLine(names.Length <= width ? $"  {names.PadRight(width)}  {text}" : $"  {names}\n  {new string(' ', width)}  {text}");
        return sb.ToString();
    }

    public void Check(string[] args) => Parse(args);

    public int Run(string[] args, CliContext context) => Execute(Parse(args), context);

    /// <summary>Option names in args → raw values, then the config file's keys for what the command line left out.</summary>
    public Parsed<T> Parse(string[] args)
    {
        var byName = new Dictionary<string, CliOption<T>>(StringComparer.Ordinal);
        foreach (var o in All)
            foreach (var n in o.Aliases.Prepend(o.Name))
                byName[n] = o;
        var given = new Dictionary<CliOption<T>, (string? Value, string What)>();
        var positionals = new List<string>();
        string? configFile = null;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!IsOptionName(a)) { positionals.Add(a); continue; }
            string name = a[2..];
            string? value = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
            if (AcceptsConfig && name == ConfigOption)
            {
                if (configFile != null) throw new UsageException($"{Name}: --{name} given twice");
                configFile = value ?? (i + 1 < args.Length && !IsOptionName(args[i + 1]) ? args[++i] : throw new UsageException($"{Name}: --{name} needs a value"));
                continue;
            }
            if (!byName.TryGetValue(name, out var option)) throw new UsageException($"{Name}: unknown option --{name}");
            // Flags take a value only as --flag=value, so a positional after a flag stays a positional.
            if (value is null && !option.IsFlag && i + 1 < args.Length && !IsOptionName(args[i + 1])) value = args[++i];
            if (given.ContainsKey(option)) throw new UsageException($"{Name}: --{option.Name} given twice");
            given[option] = (value, $"{Name}: --{name}");
        }
        if (configFile != null) AddConfig(configFile, byName, given);

        int allowed = Positional is null ? 0 : 1;
        if (positionals.Count > allowed) throw new UsageException($"{Name}: unexpected argument '{positionals[allowed]}'");
        foreach (var o in All.Where(o => o.Required && !given.ContainsKey(o)))
            throw new UsageException($"{Name}: --{o.Name} is required");

        var value0 = Defaults;
        foreach (var o in All) // declaration order, so later options see earlier ones (e.g. the method before its knobs)
            if (given.TryGetValue(o, out var v)) value0 = o.Apply(value0, v.Value, v.What);
        return new Parsed<T>(value0, given.Keys.Select(o => o.Name).ToHashSet(), positionals, args);
    }

    void AddConfig(string path, Dictionary<string, CliOption<T>> byName, Dictionary<CliOption<T>, (string? Value, string What)> given)
    {
        if (!File.Exists(path)) throw new EngineException($"{path}: config file not found");
        Dictionary<string, object?>? table;
        try { table = Tomlyn.TomlSerializer.Deserialize<Dictionary<string, object?>>(File.ReadAllText(path)); }
        catch (Tomlyn.TomlException e) { throw new EngineException($"{path}: invalid TOML {e.Message}"); }
        var unknown = new List<string>();
        foreach (var (rawKey, raw) in table ?? new())
        {
            string key = rawKey.Replace('_', '-');
            if (!byName.TryGetValue(key, out var option)) { unknown.Add(rawKey); continue; }
            string text = raw switch
            {
                string s => s,
                bool b => b ? "true" : "false",
                double d => d.ToString("R", CultureInfo.InvariantCulture),
                float f => f.ToString("R", CultureInfo.InvariantCulture),
                long l => l.ToString(CultureInfo.InvariantCulture),
                int n => n.ToString(CultureInfo.InvariantCulture),
                // A list option (TRL's lora_target_modules = ["q_proj", "v_proj"]) is its comma-separated form.
                System.Collections.IEnumerable items when items.Cast<object?>().All(i => i is string) => string.Join(",", items.Cast<string>()),
                _ => throw new EngineException($"{path}: '{rawKey}' must be a string, number or boolean (tables and arrays are not options)"),
            };
            if (given.ContainsKey(option)) continue; // the command line wins
            given[option] = (text, $"{path}: {rawKey}");
        }
        if (unknown.Count > 0)
            throw new EngineException($"{path}: unknown key{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown)} for '{Name}' (the keys are the option names of `engine {Name} --help`)");
    }

    // A value may itself start with '-' (negative numbers, "-" for stdin); only --word counts as an option.
    static bool IsOptionName(string s) => s.StartsWith("--") && s.Length > 2 && !double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);
}
