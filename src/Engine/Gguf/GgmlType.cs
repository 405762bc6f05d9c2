namespace Engine.Gguf;

/// <summary>The ggml tensor types Engine reads and writes (numbering from ggml.h).</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q5_0 = 6,
    Q8_0 = 8,
    Q4_K = 12,
    Q6_K = 14,
    BF16 = 30,
}

/// <summary>Block geometry of each <see cref="GgmlType"/>: elements per block and bytes per block.</summary>
public static class GgmlTypes
{
    /// <summary>Elements per 256-element super-block of the K-quants (QK_K).</summary>
    public const int SuperBlock = 256;

    public static bool IsKnown(uint raw) => Enum.IsDefined(typeof(GgmlType), raw);

    public static int BlockSize(GgmlType t) => t switch
    {
        GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 => 1,
        GgmlType.Q4_0 or GgmlType.Q5_0 or GgmlType.Q8_0 => 32,
        GgmlType.Q4_K or GgmlType.Q6_K => SuperBlock,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };

    public static int BlockBytes(GgmlType t) => t switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        GgmlType.Q4_0 => 18,
        GgmlType.Q5_0 => 22,
        GgmlType.Q8_0 => 34,
        GgmlType.Q4_K => 144,
        GgmlType.Q6_K => 210,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, null),
    };

    public static bool IsQuantized(GgmlType t) => BlockSize(t) > 1;

    /// <summary>Whether a row of <paramref name="rowLength"/> elements splits into whole blocks of this type.</summary>
    public static bool FitsRow(GgmlType t, long rowLength) => rowLength % BlockSize(t) == 0;

    /// <summary>Bytes of one row of <paramref name="rowLength"/> elements (must fit whole blocks).</summary>
    public static long RowBytes(GgmlType t, long rowLength) => rowLength / BlockSize(t) * BlockBytes(t);

    /// <summary>ggml's name for the type (as llama.cpp prints it).</summary>
    public static string Name(GgmlType t) => t switch
    {
        GgmlType.F32 => "f32",
        GgmlType.F16 => "f16",
        GgmlType.BF16 => "bf16",
        GgmlType.Q4_0 => "q4_0",
        GgmlType.Q5_0 => "q5_0",
        GgmlType.Q8_0 => "q8_0",
        GgmlType.Q4_K => "q4_K",
        GgmlType.Q6_K => "q6_K",
        _ => t.ToString(),
    };
}
