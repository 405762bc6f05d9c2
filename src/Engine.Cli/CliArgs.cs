using System.Globalization;

namespace Engine.Cli;

/// <summary>
/// Parsed <c>--name value</c> / <c>--flag</c> arguments of one command. Every option a command reads is
/// declared by reading it; <see cref="EnsureAllUsed"/> then rejects anything unknown, so typos fail loudly.
/// </summary>
public sealed class CliArgs
{
    readonly Dictionary<string, string?> _values = new();
    /// <summary>Where each value came from when not the command line (config file keys), for error messages.</summary>
    readonly Dictionary<string, string> _origin = new();
    readonly HashSet<string> _used = new();
    public List<string> Positionals { get; } = new();
    public string Command { get; }

    public CliArgs(string command, IEnumerable<string> args)
    {
        Command = command;
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string a = list[i];
            if (a.StartsWith("--") && a.Length > 2)
            {
                string name = a[2..];
                string? value = null;
                int eq = name.IndexOf('=');
                if (eq >= 0) { value = name[(eq + 1)..]; name = name[..eq]; }
                else if (i + 1 < list.Count && !IsOptionName(list[i + 1])) value = list[++i];
                if (_values.ContainsKey(name)) throw new UsageException($"{command}: --{name} given twice");
                _values[name] = value;
            }
            else Positionals.Add(a);
        }
    }

    // A value may itself start with '-' (negative numbers, "-" for stdin); only --word counts as an option.
    static bool IsOptionName(string s) => s.StartsWith("--") && s.Length > 2 && !double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    public bool Has(string name) { _used.Add(name); return _values.ContainsKey(name); }

    public string? String(string name)
    {
        _used.Add(name);
        if (!_values.TryGetValue(name, out var v)) return null;
        if (v is null) throw new UsageException($"{Command}: --{name} needs a value");
        return v;
    }

    public string RequiredString(string name) => String(name) ?? throw new UsageException($"{Command}: --{name} is required");

    public bool Flag(string name)
    {
        _used.Add(name);
        if (!_values.TryGetValue(name, out var v)) return false;
        return v switch
        {
            null or "true" or "on" or "1" => true,
            "false" or "off" or "0" => false,
            _ => throw new UsageException($"{Command}: --{name} is a flag (got '{v}')"),
        };
    }

    public int? Int(string name, int? min = null)
    {
        var s = String(name);
        if (s is null) return null;
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
            throw new UsageException($"{Command}: --{name} expects an integer (got '{s}')");
        if (min is int m && v < m) throw new UsageException($"{Command}: --{name} must be at least {m} (got {v})");
        return v;
    }

    public long? Long(string name)
    {
        var s = String(name);
        if (s is null) return null;
        if (!long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v))
            throw new UsageException($"{Command}: --{name} expects an integer (got '{s}')");
        return v;
    }

    public double? Double(string name)
    {
        var s = String(name);
        if (s is null) return null;
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || double.IsNaN(v))
            throw new UsageException($"{Command}: --{name} expects a number (got '{s}')");
        return v;
    }

    public string Choice(string name, string defaultValue, params string[] allowed)
    {
        var s = String(name) ?? defaultValue;
        if (!allowed.Contains(s)) throw new UsageException($"{Command}: --{name} must be one of {string.Join(", ", allowed)} (got '{s}')");
        return s;
    }

    /// <summary>Option names given (on the command line or from a config file).</summary>
    public IEnumerable<string> GivenNames => _values.Keys;

    /// <summary>
    /// Adds the keys of a flat TOML file as option values; options given on the command line win. Keys may use
    /// '-' or '_' (<c>grad_accum</c> = <c>--grad-accum</c>).
    /// </summary>
    public void ApplyConfigFile(string path)
    {
        if (!File.Exists(path)) throw new Engine.EngineException($"{path}: config file not found");
        Dictionary<string, object?>? table;
        try { table = Tomlyn.TomlSerializer.Deserialize<Dictionary<string, object?>>(File.ReadAllText(path)); }
        catch (Tomlyn.TomlException e) { throw new Engine.EngineException($"{path}: invalid TOML {e.Message}"); }
        foreach (var (rawKey, value) in table ?? new())
        {
            string key = rawKey.Replace('_', '-');
            string text = value switch
            {
                string str => str,
                bool b => b ? "true" : "false",
                double d => d.ToString("R", CultureInfo.InvariantCulture),
                float f => f.ToString("R", CultureInfo.InvariantCulture),
                long l => l.ToString(CultureInfo.InvariantCulture),
                int i => i.ToString(CultureInfo.InvariantCulture),
                _ => throw new Engine.EngineException($"{path}: '{rawKey}' must be a string, number or boolean (tables and arrays are not options)"),
            };
            if (_values.ContainsKey(key)) continue;
            _values[key] = text;
            _origin[key] = path;
        }
    }

    /// <summary>Fails on options the command did not read and on stray positionals.</summary>
    public void EnsureAllUsed(int allowedPositionals = 0)
    {
        var unknownInConfig = _values.Keys.Where(k => !_used.Contains(k) && _origin.ContainsKey(k)).ToList();
        if (unknownInConfig.Count > 0)
            throw new Engine.EngineException($"{_origin[unknownInConfig[0]]}: unknown key{(unknownInConfig.Count > 1 ? "s" : "")} {string.Join(", ", unknownInConfig)} for '{Command}'");
        var unknown = _values.Keys.Where(k => !_used.Contains(k)).ToList();
        if (unknown.Count > 0) throw new UsageException($"{Command}: unknown option{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(u => "--" + u))}");
        if (Positionals.Count > allowedPositionals)
            throw new UsageException($"{Command}: unexpected argument '{Positionals[allowedPositionals]}'");
    }
}

/// <summary>A malformed command line: printed with the command's usage, exit code 2.</summary>
public sealed class UsageException : Exception
{
    public UsageException(string message) : base(message) { }
}
