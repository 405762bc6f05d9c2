namespace Engine.Kernels.Quantized;

/// <summary>
/// Storage formats of a frozen, quantized weight (docs/kernels.md, "Quantized weights"). Blocks are
/// <see cref="QuantFormats.BlockSize"/> consecutive values of the flattened [out, in] weight, as bitsandbytes lays them out.
/// </summary>
public enum QuantFormat
{
    /// <summary>4-bit NormalFloat (bitsandbytes' nf4): two codes per byte, an fp32 absmax per block of 64.</summary>
    Nf4,
    /// <summary>NF4 with double quantization (bitsandbytes' compress_statistics / use_bnb_nested_quant): the absmax
    /// stored as 8-bit indices into the signed dynamic code, an fp32 scale per 256 blocks, one fp32 offset.</summary>
    Nf4DoubleQuant,
    /// <summary>8-bit blockwise absmax: int8 codes, an fp32 scale (absmax / 127) per block of 64.</summary>
    Int8,
}

public static class QuantFormats
{
    /// <summary>Values per quantization block.</summary>
    public const int BlockSize = 64;
    /// <summary>Blocks per group of the double-quantized absmax.</summary>
    public const int DoubleQuantGroup = 256;

    /// <summary>Stored bytes per weight parameter (codes plus block statistics), for memory planning.
    /// NF4: 0.5 + 4/64 = 0.5625; NF4 double-quant: 0.5 + 1/64 + 4/(64·256) ≈ 0.5159; Int8: 1 + 4/64 = 1.0625.
    /// (Per-tensor constants — the 256-entry code and the offset, 1 KiB — are not included.)</summary>
    public static double BytesPerParameter(this QuantFormat format) => format switch
    {
        QuantFormat.Nf4 => 0.5 + 4.0 / BlockSize,
        QuantFormat.Nf4DoubleQuant => 0.5 + 1.0 / BlockSize + 4.0 / (BlockSize * DoubleQuantGroup),
        QuantFormat.Int8 => 1.0 + 4.0 / BlockSize,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    /// <summary>Bits per code (4 or 8).</summary>
    public static int CodeBits(this QuantFormat format) => format == QuantFormat.Int8 ? 8 : 4;

    public static string Name(this QuantFormat format) => format switch
    {
        QuantFormat.Nf4 => "nf4",
        QuantFormat.Nf4DoubleQuant => "nf4-dq",
        QuantFormat.Int8 => "int8",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    /// <summary>"nf4", "nf4-dq" (or "nf4-double-quant"), "int8"; anything else is an EngineException naming it.</summary>
    public static QuantFormat Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "nf4" => QuantFormat.Nf4,
        "nf4-dq" or "nf4-double-quant" => QuantFormat.Nf4DoubleQuant,
        "int8" => QuantFormat.Int8,
        _ => throw new EngineException($"unknown quantization format '{name}' (expected nf4, nf4-dq or int8)"),
    };

    internal static int NativeCode(this QuantFormat format) => format switch
    {
        QuantFormat.Nf4 => 0,
        QuantFormat.Nf4DoubleQuant => 1,
        QuantFormat.Int8 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };
}
