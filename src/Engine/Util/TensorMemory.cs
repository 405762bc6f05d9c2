using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Engine.Util;

/// <summary>Raw access to a tensor's storage for IO and native kernels (TorchSharp has no public data_ptr).</summary>
public static class TensorMemory
{
    [DllImport("LibTorchSharp")]
    static extern IntPtr THSTensor_data(IntPtr handle);

    /// <summary>Pointer to the first element of <paramref name="t"/> (view offset included).</summary>
    public static IntPtr DataPointer(Tensor t) => THSTensor_data(t.Handle);

    public static long ByteLength(Tensor t) => t.numel() * t.element_size();

    /// <summary>Copies raw bytes into a contiguous tensor of the same byte length.</summary>
    public static unsafe void CopyFrom(Tensor destination, byte* source, long byteCount)
    {
        if (!destination.is_contiguous()) throw new ArgumentException("destination must be contiguous");
        if (destination.device_type != DeviceType.CPU) throw new ArgumentException("destination must be on the CPU");
        if (ByteLength(destination) != byteCount) throw new ArgumentException($"byte count {byteCount} does not match tensor ({ByteLength(destination)})");
        Buffer.MemoryCopy(source, (void*)DataPointer(destination), byteCount, byteCount);
    }

    /// <summary>Copies a contiguous CPU tensor's bytes to a stream without a managed copy of the whole tensor.</summary>
    public static unsafe void WriteTo(Tensor source, Stream stream)
    {
        if (!source.is_contiguous() || source.device_type != DeviceType.CPU) throw new ArgumentException("source must be a contiguous CPU tensor");
        byte* p = (byte*)DataPointer(source);
        long remaining = ByteLength(source);
        const int chunk = 1 << 22;
        while (remaining > 0)
        {
            int n = (int)Math.Min(chunk, remaining);
            stream.Write(new ReadOnlySpan<byte>(p, n));
            p += n;
            remaining -= n;
        }
    }

    public static ScalarType ParseDtype(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "float32" or "fp32" or "float" => ScalarType.Float32,
        "bf16" or "bfloat16" => ScalarType.BFloat16,
        "f16" or "float16" or "fp16" or "half" => ScalarType.Float16,
        _ => throw new EngineException($"unknown dtype '{name}' (expected f32, bf16 or f16)"),
    };

    public static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        _ => t.ToString().ToLowerInvariant(),
    };
}
