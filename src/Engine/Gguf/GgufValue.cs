namespace Engine.Gguf;

/// <summary>GGUF metadata value types (GGUF v3 numbering).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>
/// One metadata value: a scalar (boxed), a string, or an array held as a typed .NET array
/// (<c>string[]</c>, <c>float[]</c>, <c>int[]</c>, ...). Arrays of arrays are not supported (nothing llama.cpp writes uses them).
/// </summary>
public sealed class GgufValue
{
    public GgufValueType Type { get; }
    /// <summary>The element type when <see cref="Type"/> is Array.</summary>
    public GgufValueType ElementType { get; }
    public object Value { get; }

    GgufValue(GgufValueType type, GgufValueType elementType, object value)
    {
        Type = type; ElementType = elementType; Value = value;
    }

    public static GgufValue Scalar(GgufValueType type, object value)
    {
        if (type is GgufValueType.Array) throw new ArgumentException("use an array factory");
        return new GgufValue(type, type, value);
    }

    public static GgufValue U32(uint v) => new(GgufValueType.UInt32, GgufValueType.UInt32, v);
    public static GgufValue I32(int v) => new(GgufValueType.Int32, GgufValueType.Int32, v);
    public static GgufValue U64(ulong v) => new(GgufValueType.UInt64, GgufValueType.UInt64, v);
    public static GgufValue F32(float v) => new(GgufValueType.Float32, GgufValueType.Float32, v);
    public static GgufValue Bool(bool v) => new(GgufValueType.Bool, GgufValueType.Bool, v);
    public static GgufValue Str(string v) => new(GgufValueType.String, GgufValueType.String, v);

    /// <summary>An array value; <paramref name="items"/> must be the .NET array type matching <paramref name="elementType"/>.</summary>
    public static GgufValue Array(GgufValueType elementType, System.Array items)
    {
        if (elementType is GgufValueType.Array) throw new ArgumentException("nested arrays are not supported");
        if (items.GetType().GetElementType() != ClrType(elementType))
            throw new ArgumentException($"array of {items.GetType().GetElementType()} does not hold GGUF {elementType}");
        return new GgufValue(GgufValueType.Array, elementType, items);
    }

    public static GgufValue Strings(IEnumerable<string> v) => Array(GgufValueType.String, v.ToArray());
    public static GgufValue Floats(IEnumerable<float> v) => Array(GgufValueType.Float32, v.ToArray());
    public static GgufValue Ints(IEnumerable<int> v) => Array(GgufValueType.Int32, v.ToArray());

    /// <summary>The .NET type that holds one element of <paramref name="t"/>.</summary>
    public static Type ClrType(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 => typeof(byte), GgufValueType.Int8 => typeof(sbyte),
        GgufValueType.UInt16 => typeof(ushort), GgufValueType.Int16 => typeof(short),
        GgufValueType.UInt32 => typeof(uint), GgufValueType.Int32 => typeof(int),
        GgufValueType.Float32 => typeof(float), GgufValueType.Bool => typeof(bool),
        GgufValueType.String => typeof(string), GgufValueType.UInt64 => typeof(ulong),
        GgufValueType.Int64 => typeof(long), GgufValueType.Float64 => typeof(double),
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };

    /// <summary>Bytes one element occupies on disk; strings report their minimum (the 8-byte length).</summary>
    public static int EncodedSize(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };

    public bool IsInteger => Type is GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.UInt16 or GgufValueType.Int16
        or GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.UInt64 or GgufValueType.Int64;

    /// <summary>The value as a 64-bit integer, for any integer type; null otherwise.</summary>
    public long? AsInt64() => Value switch
    {
        byte b => b, sbyte s => s, ushort u => u, short s => s, uint u => u, int i => i,
        long l => l,
        ulong u => u <= long.MaxValue ? (long)u : null,
        _ => null,
    };

    /// <summary>The value as a double, for integer and floating-point types; null otherwise.</summary>
    public double? AsDouble() => Value switch
    {
        float f => f, double d => d,
        _ => AsInt64(),
    };

    public override string ToString() => Type switch
    {
        GgufValueType.String => $"\"{Value}\"",
        GgufValueType.Array => $"[{ElementType} × {((System.Array)Value).Length}]",
        _ => Convert.ToString(Value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}
