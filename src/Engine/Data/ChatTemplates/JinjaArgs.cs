namespace Engine.Data.ChatTemplates;

/// <summary>Reads the arguments of a filter, test, method or global by position or keyword, as Python
/// binds them, and rejects unknown or surplus ones.</summary>
internal sealed class JinjaArgs
{
    readonly JinjaRenderer _r;
    readonly string _what;
    readonly List<object?> _args;
    readonly Dictionary<string, object?> _kwargs;
    readonly HashSet<string> _used = new(StringComparer.Ordinal);
    int _positionalUsed;
    public SourcePos Pos { get; }

    public JinjaArgs(JinjaRenderer r, string what, List<object?> args, Dictionary<string, object?> kwargs, SourcePos pos)
    {
        _r = r;
        _what = what;
        _args = args;
        _kwargs = kwargs;
        Pos = pos;
    }

    public bool Has(int index, string name) => index < _args.Count || _kwargs.ContainsKey(name);

    public object? Optional(int index, string name, object? fallback)
    {
        _used.Add(name);
        if (index < _args.Count)
        {
            _positionalUsed = Math.Max(_positionalUsed, index + 1);
            if (_kwargs.ContainsKey(name)) throw _r.Fail(Pos, $"{_what}: got '{name}' both by position and by name");
            return _args[index];
        }
        return _kwargs.TryGetValue(name, out var v) ? v : fallback;
    }

    public object? Required(int index, string name)
    {
        if (!Has(index, name)) throw _r.Fail(Pos, $"{_what}: missing argument '{name}'");
        return Optional(index, name, null);
    }

    public string RequiredString(int index, string name) => Required(index, name) is string s
        ? s : throw _r.Fail(Pos, $"{_what}: '{name}' must be a string");

    public string? OptionalString(int index, string name) => Optional(index, name, null) switch
    {
        null => null,
        string s => s,
        var v => throw _r.Fail(Pos, $"{_what}: '{name}' must be a string, not {JinjaValue.TypeName(v)}"),
    };

    public long OptionalLong(int index, string name, long fallback) => Optional(index, name, fallback) switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        null => fallback,
        var v => throw _r.Fail(Pos, $"{_what}: '{name}' must be an integer, not {JinjaValue.TypeName(v)}"),
    };

    public bool OptionalBool(int index, string name, bool fallback) => JinjaValue.Truthy(Optional(index, name, fallback));

    /// <summary>The positional arguments from <paramref name="index"/> on (for variadic functions).</summary>
    public List<object?> Rest(int index)
    {
        _positionalUsed = Math.Max(_positionalUsed, _args.Count);
        return _args.Skip(index).ToList();
    }

    public void Done()
    {
        if (_args.Count > _positionalUsed)
            throw _r.Fail(Pos, $"{_what}: too many positional arguments ({_args.Count})");
        foreach (var k in _kwargs.Keys)
            if (!_used.Contains(k)) throw _r.Fail(Pos, $"{_what}: unexpected argument '{k}'");
    }
}
