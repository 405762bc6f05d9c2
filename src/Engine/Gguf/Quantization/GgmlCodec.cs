using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Gguf.Quantization;

/// <summary>
/// Encodes float rows into any supported ggml type and decodes them back; the row loops run in parallel
/// over all cores.
/// </summary>
public static class GgmlCodec
{
    /// <summary>Encodes <paramref name="src"/> (a whole number of blocks) into <paramref name="dst"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Encode(GgmlType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        CheckLengths(type, src.Length, dst.Length);
        switch (type)
        {
            case GgmlType.F32: MemoryMarshal.AsBytes(src).CopyTo(dst); break;
            case GgmlType.F16: FloatCodecs.ToHalf(src, MemoryMarshal.Cast<byte, ushort>(dst)); break;
            case GgmlType.BF16: FloatCodecs.ToBFloat16(src, MemoryMarshal.Cast<byte, ushort>(dst)); break;
            case GgmlType.Q8_0: Q8_0Codec.Quantize(src, dst); break;
            case GgmlType.Q4_0: Q4_0Codec.Quantize(src, dst); break;
            case GgmlType.Q5_0: Q5_0Codec.Quantize(src, dst); break;
            case GgmlType.Q4_K: Q4KCodec.Quantize(src, dst); break;
            case GgmlType.Q6_K: Q6KCodec.Quantize(src, dst); break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    /// <summary>Decodes <paramref name="src"/> into <paramref name="dst"/> (whose length sets the element count).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Decode(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        CheckLengths(type, dst.Length, src.Length);
        switch (type)
        {
            case GgmlType.F32: src.CopyTo(MemoryMarshal.AsBytes(dst)); break;
            case GgmlType.F16: FloatCodecs.FromHalf(MemoryMarshal.Cast<byte, ushort>(src), dst); break;
            case GgmlType.BF16: FloatCodecs.FromBFloat16(MemoryMarshal.Cast<byte, ushort>(src), dst); break;
            case GgmlType.Q8_0: Q8_0Codec.Dequantize(src, dst); break;
            case GgmlType.Q4_0: Q4_0Codec.Dequantize(src, dst); break;
            case GgmlType.Q5_0: Q5_0Codec.Dequantize(src, dst); break;
            case GgmlType.Q4_K: Q4KCodec.Dequantize(src, dst); break;
            case GgmlType.Q6_K: Q6KCodec.Dequantize(src, dst); break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    static void CheckLengths(GgmlType type, int elements, int bytes)
    {
        if (elements % GgmlTypes.BlockSize(type) != 0)
            throw new ArgumentException($"{elements} elements are not a whole number of {GgmlTypes.Name(type)} blocks");
        if (GgmlTypes.RowBytes(type, elements) != bytes)
            throw new ArgumentException($"{elements} {GgmlTypes.Name(type)} elements need {GgmlTypes.RowBytes(type, elements)} bytes, got {bytes}");
    }

    /// <summary>Worker limit for the row loops; -1 (the default) uses every core. Benchmarks set 1 to measure the speed-up.</summary>
    public static int MaxDegreeOfParallelism { get; set; } = -1;

    /// <summary>Elements per parallel work item: large enough to amortise scheduling, small enough to balance.</summary>
    const long ChunkElements = 1 << 16;

    /// <summary>Encodes <paramref name="rows"/> rows of <paramref name="rowLength"/> floats, in parallel.</summary>
    public static unsafe void EncodeRows(GgmlType type, float* src, byte* dst, long rows, long rowLength)
    {
        long rowBytes = GgmlTypes.RowBytes(type, rowLength);
        ForEachRowChunk(rows, rowLength, (first, count) =>
        {
            for (long r = first; r < first + count; r++)
                Encode(type, new ReadOnlySpan<float>(src + r * rowLength, checked((int)rowLength)),
                    new Span<byte>(dst + r * rowBytes, checked((int)rowBytes)));
        });
    }

    /// <summary>Decodes <paramref name="rows"/> rows of <paramref name="rowLength"/> elements, in parallel.</summary>
    public static unsafe void DecodeRows(GgmlType type, byte* src, float* dst, long rows, long rowLength)
    {
        long rowBytes = GgmlTypes.RowBytes(type, rowLength);
        ForEachRowChunk(rows, rowLength, (first, count) =>
        {
            for (long r = first; r < first + count; r++)
                Decode(type, new ReadOnlySpan<byte>(src + r * rowBytes, checked((int)rowBytes)),
                    new Span<float>(dst + r * rowLength, checked((int)rowLength)));
        });
    }

    static void ForEachRowChunk(long rows, long rowLength, Action<long, long> body)
    {
        long rowsPerChunk = Math.Max(1, ChunkElements / Math.Max(1, rowLength));
        long chunks = (rows + rowsPerChunk - 1) / rowsPerChunk;
        if (chunks <= 1)
        {
            if (rows > 0) body(0, rows);
            return;
        }
        Parallel.For(0L, chunks, new ParallelOptions { MaxDegreeOfParallelism = MaxDegreeOfParallelism }, c =>
        {
            long first = c * rowsPerChunk;
            body(first, Math.Min(rowsPerChunk, rows - first));
        });
    }
}
