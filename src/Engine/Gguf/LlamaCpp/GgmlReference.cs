namespace Engine.Gguf.LlamaCpp;

/// <summary>
/// ggml's own quantization and dequantization (libggml-base), used as the independent reference that Engine's
/// codecs are tested against.
/// </summary>
public static unsafe class GgmlReference
{
    /// <summary>ggml_quantize_chunk without an importance matrix, i.e. the quantize_row_*_ref functions.</summary>
    public static byte[] Quantize(GgmlType type, float[] values, long rows, long rowLength)
    {
        LlamaCppLibrary.EnsureLoaded();
        var output = new byte[rows * GgmlTypes.RowBytes(type, rowLength)];
        fixed (float* src = values)
        fixed (byte* dst = output)
        {
            nuint written = LlamaCppLibrary.QuantizeChunk(type, src, dst, 0, rows, rowLength, null);
            if ((long)written != output.Length) throw new InvalidOperationException($"ggml_quantize_chunk wrote {written} bytes, expected {output.Length}");
        }
        return output;
    }

    /// <summary>The type's to_float function from ggml_get_type_traits (struct ggml_type_traits: to_float at offset 40).</summary>
    public static float[] Dequantize(GgmlType type, byte[] data, long elements)
    {
        LlamaCppLibrary.EnsureLoaded();
        byte* traits = (byte*)LlamaCppLibrary.GetTypeTraits(type);
        var toFloat = *(delegate* unmanaged[Cdecl]<void*, float*, long, void>*)(traits + 40);
        if (toFloat == null) throw new InvalidOperationException($"ggml has no to_float for {type}");
        var output = new float[elements];
        fixed (byte* src = data)
        fixed (float* dst = output)
            toFloat(src, dst, elements);
        return output;
    }
}
