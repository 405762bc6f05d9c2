namespace Engine.Gguf;

/// <summary>Typed reads of metadata through the <see cref="GgufKeys"/> table (values of another type are errors that name the key).</summary>
public sealed partial class GgufFile
{
    /// <summary>The value of <paramref name="key"/> (under <paramref name="architecture"/> when per-architecture), or null.</summary>
    public GgufValue? Get(GgufKey key, string? architecture = null) =>
        _metadata.TryGetValue(key.Name(architecture), out var v) ? v : null;

    public string? GetString(GgufKey key, string? architecture = null)
    {
        var v = Get(key, architecture);
        if (v is null) return null;
        return v.Type == GgufValueType.String ? (string)v.Value : throw WrongType(key, architecture, "a string", v);
    }

    /// <summary>An integer of any width that must fit an int; the u32 "none" marker (0xFFFFFFFF, written for absent ids) reads as null.</summary>
    public int? GetInt(GgufKey key, string? architecture = null)
    {
        var v = Get(key, architecture);
        if (v is null) return null;
        long n = (v.IsInteger ? v.AsInt64() : null) ?? throw WrongType(key, architecture, "an integer", v);
        if (n == uint.MaxValue || n == -1) return null;
        if (n < 0 || n > int.MaxValue) throw new EngineException($"{Source}: {key.Name(architecture)} = {n} is out of range");
        return (int)n;
    }

    public int RequireInt(GgufKey key, string? architecture = null) =>
        GetInt(key, architecture) ?? throw new EngineException($"{Source}: missing {key.Name(architecture)}");

    /// <summary>Any integer or floating-point value as a double.</summary>
    public double? GetDouble(GgufKey key, string? architecture = null)
    {
        var v = Get(key, architecture);
        if (v is null) return null;
        return v.AsDouble() ?? throw WrongType(key, architecture, "a number", v);
    }

    public bool? GetBool(GgufKey key, string? architecture = null)
    {
        var v = Get(key, architecture);
        if (v is null) return null;
        return v.Type == GgufValueType.Bool ? (bool)v.Value : throw WrongType(key, architecture, "a boolean", v);
    }

    /// <summary>An array key's items, which must have the element type the table gives.</summary>
    public T[]? GetArray<T>(GgufKey key, string? architecture = null)
    {
        if (key.ElementType is not GgufValueType element || GgufValue.ClrType(element) != typeof(T))
            throw new ArgumentException($"{key} is not an array of {typeof(T).Name}");
        var v = Get(key, architecture);
        if (v is null) return null;
        return key.Accepts(v) ? (T[])v.Value
            : throw WrongType(key, architecture, key.Describe(), v);
    }

    EngineException WrongType(GgufKey key, string? architecture, string expected, GgufValue v) =>
        new($"{Source}: {key.Name(architecture)} must be {expected} (got {(v.Type == GgufValueType.Array ? $"an array of {v.ElementType}" : v.Type.ToString())})");
}
