using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Models;

/// <summary>A config object whose keys are checked off as they are read, so that unread keys can be refused.</summary>
internal sealed class ConfigJson
{
    readonly JsonObject _obj;
    readonly HashSet<string> _read = new(StringComparer.Ordinal);
    public string Source { get; }

    public ConfigJson(JsonObject obj, string source) { _obj = obj; Source = source; }

    public bool Has(string key) { _read.Add(key); return _obj.ContainsKey(key); }

    JsonValue? Value(string key)
    {
        _read.Add(key);
        var n = _obj[key];
        if (n is null) return null;
        if (n is not JsonValue v) throw new EngineException($"{Source}: '{key}' must be a scalar");
        return v;
    }

    public int? Int(string key)
    {
        var v = Value(key);
        if (v is null) return null;
        if (v.GetValueKind() != JsonValueKind.Number) throw new EngineException($"{Source}: '{key}' must be a number");
        double d = v.GetValue<double>();
        if (d != Math.Floor(d) || d < int.MinValue || d > int.MaxValue) throw new EngineException($"{Source}: '{key}' must be an integer (got {d})");
        return (int)d;
    }

    public int RequiredInt(string key) => Int(key) ?? throw new EngineException($"{Source}: missing '{key}'");

    public double? Double(string key)
    {
        var v = Value(key);
        if (v is null) return null;
        if (v.GetValueKind() != JsonValueKind.Number) throw new EngineException($"{Source}: '{key}' must be a number");
        return v.GetValue<double>();
    }

    public bool? Bool(string key)
    {
        var v = Value(key);
        if (v is null) return null;
        return v.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new EngineException($"{Source}: '{key}' must be true or false"),
        };
    }

    public string? Str(string key)
    {
        var v = Value(key);
        if (v is null) return null;
        if (v.GetValueKind() != JsonValueKind.String) throw new EngineException($"{Source}: '{key}' must be a string");
        return v.GetValue<string>();
    }

    public JsonObject? Object(string key)
    {
        _read.Add(key);
        return _obj[key] switch
        {
            null => null,
            JsonObject o => o,
            _ => throw new EngineException($"{Source}: '{key}' must be an object or null"),
        };
    }

    public IReadOnlyList<string>? StringList(string key)
    {
        _read.Add(key);
        if (_obj[key] is null) return null;
        if (_obj[key] is not JsonArray a || a.Any(e => e is not JsonValue v || v.GetValueKind() != JsonValueKind.String))
            throw new EngineException($"{Source}: '{key}' must be a list of strings");
        return a.Select(e => e!.GetValue<string>()).ToList();
    }

    public string? FirstArchitecture()
    {
        _read.Add("architectures");
        if (_obj["architectures"] is not JsonArray a || a.Count == 0) return null;
        if (a.Count > 1) throw new EngineException($"{Source}: 'architectures' lists {a.Count} entries (expected one)");
        return a[0] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
            : throw new EngineException($"{Source}: 'architectures' must be a list of strings");
    }

    /// <summary>eos_token_id may be a list (Llama 3, Gemma 3); the first entry is the primary one.</summary>
    public int? IdOrFirst(string key)
    {
        if (_obj[key] is JsonArray arr)
        {
            _read.Add(key);
            if (arr.Count == 0) return null;
            if (arr[0] is not JsonValue first || first.GetValueKind() != JsonValueKind.Number)
                throw new EngineException($"{Source}: '{key}' must be an integer or a list of integers");
            return (int)first.GetValue<double>();
        }
        return Int(key);
    }

    public void RequireZero(string key)
    {
        if (Double(key) is double d && d != 0)
            throw new EngineException($"{Source}: {key} {d} is not supported (Engine trains without dropout)");
    }

    public void RequireFalse(string key, string what)
    {
        if (Bool(key) == true) throw new EngineException($"{Source}: {key} true is not supported ({what})");
    }

    public void RequireActivation(string key, string expected)
    {
        string? act = Str(key);
        if (act != null && act != expected) throw new EngineException($"{Source}: {key} '{act}' is not supported (this family uses {expected})");
    }

    /// <summary>Refuses the first key neither read nor harmless for <paramref name="family"/> (null: nothing is harmless).</summary>
    public void RejectUnread(ModelFamily? family)
    {
        foreach (var (key, _) in _obj)
        {
            if (_read.Contains(key) || (family is ModelFamily f && HfConfigKeys.IsHarmless(f, key))) continue;
            string owner = family is ModelFamily g ? $"a {ModelFamilies.Of(g).ModelType} model" : "this setting";
            throw new EngineException($"{Source}: unknown key '{key}' for {owner} (Engine refuses keys it does not understand rather than ignore what they might change)");
        }
    }
}
