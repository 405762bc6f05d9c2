using System.Runtime.InteropServices;
using Engine.Gguf;
using Engine.Gguf.LlamaCpp;

namespace Engine.Tests.Gguf;

/// <summary>
/// ggml's own quantization and dequantization, the independent reference that Engine's codecs are tested against:
/// called in libggml-base.so as LLamaSharp's CPU backend ships it (the same file for every CPU level), which
/// <see cref="LlamaCppRuntime"/> has already loaded. A test oracle, so it lives here and not in the product.
/// </summary>
public static unsafe class GgmlReference
{
    static IntPtr _library;

    static IntPtr Library()
    {
        if (_library != IntPtr.Zero) return _library;
        LlamaCppRuntime.EnsureLoaded();
        // Already loaded by LLamaSharp: this returns the same handle.
        _library = NativeLibrary.Load(Path.Combine(LlamaCppRuntime.LibraryDirectory!, "libggml-base.so"));
        return _library;
    }

    static IntPtr Export(string name) =>
        NativeLibrary.TryGetExport(Library(), name, out var p) ? p : throw new InvalidOperationException($"libggml-base.so lacks {name}");

    /// <summary>ggml_quantize_chunk without an importance matrix, i.e. the quantize_row_*_ref functions.</summary>
    public static byte[] Quantize(GgmlType type, float[] values, long rows, long rowLength)
    {
        var quantizeChunk = (delegate* unmanaged[Cdecl]<int, float*, void*, long, long, long, float*, nuint>)Export("ggml_quantize_chunk");
        var output = new byte[rows * GgmlTypes.RowBytes(type, rowLength)];
        fixed (float* src = values)
        fixed (byte* dst = output)
        {
            nuint written = quantizeChunk((int)type, src, dst, 0, rows, rowLength, null);
            if ((long)written != output.Length) throw new InvalidOperationException($"ggml_quantize_chunk wrote {written} bytes, expected {output.Length}");
        }
        return output;
    }

    /// <summary>ggml's row-to-float conversion of the type (dequantize_row_* and the F16/BF16 row converters).</summary>
    public static float[] Dequantize(GgmlType type, byte[] data, long elements)
    {
        string function = type switch
        {
            GgmlType.F16 => "ggml_fp16_to_fp32_row",
            GgmlType.BF16 => "ggml_bf16_to_fp32_row",
            _ => "dequantize_row_" + GgmlTypes.Name(type),
        };
        var toFloat = (delegate* unmanaged[Cdecl]<void*, float*, long, void>)Export(function);
        var output = new float[elements];
        fixed (byte* src = data)
        fixed (float* dst = output)
            toFloat(src, dst, elements);
        return output;
    }
}
