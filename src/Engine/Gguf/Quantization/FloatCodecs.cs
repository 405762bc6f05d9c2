using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Engine.Gguf.Quantization;

/// <summary>
/// F32 → F16 / BF16 and back, vectorised: export at F16 is mostly this conversion, so it runs at memory speed.
/// Both narrowings round to nearest even, as ggml and PyTorch do.
/// </summary>
internal static class FloatCodecs
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToHalf(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        var s = MemoryMarshal.Cast<float, uint>(src);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= s.Length; i += 16)
            {
                var lo = HalfBits(Vector256.Create(s.Slice(i, 8)));
                var hi = HalfBits(Vector256.Create(s.Slice(i + 8, 8)));
                Vector256.Narrow(lo, hi).CopyTo(dst.Slice(i, 16));
            }
        }
        for (; i < s.Length; i++) dst[i] = BitConverter.HalfToUInt16Bits((Half)src[i]);
    }

    /// <summary>Round-to-nearest-even float → half on 8 lanes (Giesen's float_to_half_fast3_rtne, branch-free).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<uint> HalfBits(Vector256<uint> u)
    {
        var sign = u & Vector256.Create(0x80000000u);
        u ^= sign;
        var f32Infinity = Vector256.Create(255u << 23);
        var f16Overflow = Vector256.Create((127u + 16) << 23);
        var denormMagic = Vector256.Create(((127u - 15) + (23 - 10) + 1) << 23);
        // Overflow to infinity; NaN to a quiet NaN.
        var special = Vector256.ConditionalSelect(Vector256.GreaterThan(u, f32Infinity), Vector256.Create(0x7e00u), Vector256.Create(0x7c00u));
        // Subnormal results: let the FPU's add do the rounding.
        var sub = (u.AsSingle() + denormMagic.AsSingle()).AsUInt32() - denormMagic;
        // Normal results: rebias the exponent and round the mantissa to 10 bits, ties to even.
        var odd = (u >> 13) & Vector256.Create(1u);
        var normal = (u + Vector256.Create(unchecked((uint)((15 - 127) << 23)) + 0xfffu) + odd) >> 13;
        var result = Vector256.ConditionalSelect(Vector256.LessThan(u, Vector256.Create(113u << 23)), sub, normal);
        result = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(u, f16Overflow), special, result);
        return result | (sign >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FromHalf(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        for (int i = 0; i < src.Length; i++) dst[i] = (float)BitConverter.UInt16BitsToHalf(src[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToBFloat16(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        var s = MemoryMarshal.Cast<float, uint>(src);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= s.Length; i += 16)
            {
                var lo = BFloat16Bits(Vector256.Create(s.Slice(i, 8)));
                var hi = BFloat16Bits(Vector256.Create(s.Slice(i + 8, 8)));
                Vector256.Narrow(lo, hi).CopyTo(dst.Slice(i, 16));
            }
        }
        for (; i < s.Length; i++) dst[i] = BFloat16Bits(s[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<uint> BFloat16Bits(Vector256<uint> u)
    {
        var rounded = (u + Vector256.Create(0x7fffu) + ((u >> 16) & Vector256.Create(1u))) >> 16;
        var nan = (u >> 16) | Vector256.Create(64u);
        var isNan = Vector256.GreaterThan(u & Vector256.Create(0x7fffffffu), Vector256.Create(0x7f800000u));
        return Vector256.ConditionalSelect(isNan, nan, rounded);
    }

    /// <summary>Round-to-nearest-even float → bfloat16 bits; NaN stays a (quiet) NaN, as in ggml.</summary>
    public static ushort BFloat16Bits(uint u) =>
        (u & 0x7fffffff) > 0x7f800000 ? (ushort)((u >> 16) | 64) : (ushort)((u + 0x7fff + ((u >> 16) & 1)) >> 16);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FromBFloat16(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        var d = MemoryMarshal.Cast<float, uint>(dst);
        for (int i = 0; i < src.Length; i++) d[i] = (uint)src[i] << 16;
    }
}
