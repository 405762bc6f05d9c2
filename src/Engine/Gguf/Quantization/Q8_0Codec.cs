using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using static Engine.Gguf.Quantization.QuantMath;

namespace Engine.Gguf.Quantization;

/// <summary>Q8_0: blocks of 32 as an fp16 scale d = max|x|/127 and 32 int8 values round(x/d) (34 bytes).</summary>
internal static class Q8_0Codec
{
    public const int Block = 32, Bytes = 34;

    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y) => Quantize(x, y, FloatCodecs.Widest);

    /// <summary>
    /// ggml's quantize_row_q8_0_ref: the same float operations in the same precision per element (max is exact in
    /// any order, and round-half-away-from-zero is done exactly), so every vector width gives the same bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y, SimdWidth width)
    {
        bool vector = width >= SimdWidth.V256 && Vector256.IsHardwareAccelerated;
        for (int b = 0; b < x.Length / Block; b++)
        {
            var xs = x.Slice(b * Block, Block);
            var ys = y.Slice(b * Bytes, Bytes);
            if (vector) QuantizeBlock(xs, ys);
            else QuantizeBlockScalar(xs, ys);
        }
    }

    static void QuantizeBlockScalar(ReadOnlySpan<float> xs, Span<byte> ys)
    {
        float amax = 0;
        for (int j = 0; j < Block; j++) amax = Math.Max(amax, MathF.Abs(xs[j]));
        float d = amax / 127;
        float id = d != 0 ? 1.0f / d : 0.0f;
        WriteU16(ys, 0, ToHalfBits(d));
        for (int j = 0; j < Block; j++)
            ys[2 + j] = (byte)(sbyte)MathF.Round(xs[j] * id, MidpointRounding.AwayFromZero);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void QuantizeBlock(ReadOnlySpan<float> xs, Span<byte> ys)
    {
        ref float x = ref MemoryMarshal.GetReference(xs);
        var v0 = Vector256.LoadUnsafe(ref x, 0);
        var v1 = Vector256.LoadUnsafe(ref x, 8);
        var v2 = Vector256.LoadUnsafe(ref x, 16);
        var v3 = Vector256.LoadUnsafe(ref x, 24);
        var m = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
        if (!Vector256.EqualsAll(m, m))
        {
            // A NaN: the scale is then the first NaN in element order (Math.Max keeps it), whose payload a tree of
            // maxima would not pick, so such a block takes the scalar path.
            QuantizeBlockScalar(xs, ys);
            return;
        }
        var m4 = Vector128.Max(m.GetLower(), m.GetUpper());
        var m2 = Vector128.Max(m4, Vector128.Shuffle(m4, Vector128.Create(2, 3, 0, 1)));
        float amax = MathF.Max(m2.GetElement(0), m2.GetElement(1));
        float d = amax / 127;
        float id = d != 0 ? 1.0f / d : 0.0f;
        WriteU16(ys, 0, ToHalfBits(d));
        var scale = Vector256.Create(id);
        var q01 = Vector256.Narrow(RoundAway(v0 * scale), RoundAway(v1 * scale));
        var q23 = Vector256.Narrow(RoundAway(v2 * scale), RoundAway(v3 * scale));
        Vector256.Narrow(q01, q23).AsByte().StoreUnsafe(ref MemoryMarshal.GetReference(ys), 2);
    }

    /// <summary>
    /// MathF.Round(v, AwayFromZero) on 8 lanes, then the int conversion that .NET's (sbyte) cast starts with (saturating,
    /// NaN → 0; the narrowing that follows keeps the low byte, as the cast does). The half-way test is exact, since
    /// v − trunc(v) is exact in float. Only an infinite scale (a block of subnormals) leaves the sbyte range.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> RoundAway(Vector256<float> v)
    {
        var t = Vector256.Truncate(v);
        var up = Vector256.GreaterThanOrEqual(Vector256.Abs(v - t), Vector256.Create(0.5f));
        var step = Vector256.ConditionalSelect(Vector256.LessThan(v, Vector256<float>.Zero), Vector256.Create(-1f), Vector256<float>.One);
        return Vector256.ConvertToInt32(t + (step & up));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dequantize(ReadOnlySpan<byte> y, Span<float> x)
    {
        for (int b = 0; b < x.Length / Block; b++)
        {
            var ys = y.Slice(b * Bytes, Bytes);
            float d = FromHalfBits(ReadU16(ys, 0));
            var xs = x.Slice(b * Block, Block);
            for (int j = 0; j < Block; j++) xs[j] = (sbyte)ys[2 + j] * d;
        }
    }
}
