using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Engine.Gguf.Quantization;

/// <summary>Vector widths a conversion can use; tests force each one to check it against the scalar reference.</summary>
public enum SimdWidth { Scalar = 0, V256 = 256, V512 = 512 }

/// <summary>
/// F32 → F16 / BF16 and back, vectorised on 512-bit (AVX-512) or 256-bit (AVX2) registers with a scalar tail; export
/// at F16 is mostly this conversion, so it must run at memory speed. .NET exposes no F16C instruction, so the
/// conversions are integer bit operations that give exactly what the scalar paths give:
/// F32 → F16 rounds to nearest even as <see cref="Half"/> (and x86's F16C) does, a NaN keeping its sign and top
/// payload bits and becoming quiet; F32 → BF16 rounds to nearest even, a NaN becoming quiet as in ggml;
/// F16 → F32 equals the <see cref="Half"/> widening (exact; NaN quietened); BF16 → F32 is exact.
/// </summary>
internal static class FloatCodecs
{
    /// <summary>The widest vector path this machine runs (Vector256 needs AVX2 for its integer operations).</summary>
    public static SimdWidth Widest { get; } =
        Vector512.IsHardwareAccelerated ? SimdWidth.V512 : Vector256.IsHardwareAccelerated ? SimdWidth.V256 : SimdWidth.Scalar;

    public static void ToHalf(ReadOnlySpan<float> src, Span<ushort> dst) => ToHalf(src, dst, Widest);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToHalf(ReadOnlySpan<float> src, Span<ushort> dst, SimdWidth width)
    {
        var s = MemoryMarshal.Cast<float, uint>(src);
        if (dst.Length < s.Length) throw new ArgumentException("destination is shorter than the source", nameof(dst));
        ref uint si = ref MemoryMarshal.GetReference(s);
        ref ushort di = ref MemoryMarshal.GetReference(dst);
        nuint n = (nuint)s.Length, i = 0;
        if (width >= SimdWidth.V512 && Vector512.IsHardwareAccelerated)
            for (; i + 32 <= n; i += 32)
                Vector512.Narrow(HalfBits(Vector512.LoadUnsafe(ref si, i)), HalfBits(Vector512.LoadUnsafe(ref si, i + 16))).StoreUnsafe(ref di, i);
        if (width >= SimdWidth.V256 && Vector256.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16)
                Vector256.Narrow(HalfBits(Vector256.LoadUnsafe(ref si, i)), HalfBits(Vector256.LoadUnsafe(ref si, i + 8))).StoreUnsafe(ref di, i);
        for (; i < n; i++) Unsafe.Add(ref di, i) = BitConverter.HalfToUInt16Bits((Half)BitConverter.UInt32BitsToSingle(Unsafe.Add(ref si, i)));
    }

    // Round-to-nearest-even float → half, branch-free (after Giesen's float_to_half_fast3_rtne). The same steps
    // on 16 and on 8 lanes: a normal result rebiases the exponent and rounds the mantissa to 10 bits, ties to even
    // (a carry out of the mantissa correctly reaches the next exponent, or infinity); a subnormal result lets the
    // FPU's round-to-nearest-even add do the rounding; overflow gives infinity; a NaN keeps its top payload bits
    // and gets the quiet bit, as System.Half and F16C do.
    const uint SignMask = 0x80000000u, F32Infinity = 255u << 23, F16Overflow = (127u + 16) << 23;
    const uint DenormMagic = ((127u - 15) + (23 - 10) + 1) << 23, SmallestNormal = 113u << 23;
    const uint Rebias = unchecked((uint)((15 - 127) << 23)) + 0xfffu;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<uint> HalfBits(Vector512<uint> u)
    {
        var sign = u & Vector512.Create(SignMask);
        u ^= sign;
        var nan = Vector512.Create(0x7e00u) | ((u >> 13) & Vector512.Create(0x3ffu));
        var special = Vector512.ConditionalSelect(Vector512.GreaterThan(u, Vector512.Create(F32Infinity)), nan, Vector512.Create(0x7c00u));
        var sub = (u.AsSingle() + Vector512.Create(DenormMagic).AsSingle()).AsUInt32() - Vector512.Create(DenormMagic);
        var normal = (u + Vector512.Create(Rebias) + ((u >> 13) & Vector512<uint>.One)) >> 13;
        var result = Vector512.ConditionalSelect(Vector512.LessThan(u, Vector512.Create(SmallestNormal)), sub, normal);
        result = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(u, Vector512.Create(F16Overflow)), special, result);
        return result | (sign >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<uint> HalfBits(Vector256<uint> u)
    {
        var sign = u & Vector256.Create(SignMask);
        u ^= sign;
        var nan = Vector256.Create(0x7e00u) | ((u >> 13) & Vector256.Create(0x3ffu));
        var special = Vector256.ConditionalSelect(Vector256.GreaterThan(u, Vector256.Create(F32Infinity)), nan, Vector256.Create(0x7c00u));
        var sub = (u.AsSingle() + Vector256.Create(DenormMagic).AsSingle()).AsUInt32() - Vector256.Create(DenormMagic);
        var normal = (u + Vector256.Create(Rebias) + ((u >> 13) & Vector256<uint>.One)) >> 13;
        var result = Vector256.ConditionalSelect(Vector256.LessThan(u, Vector256.Create(SmallestNormal)), sub, normal);
        result = Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(u, Vector256.Create(F16Overflow)), special, result);
        return result | (sign >> 16);
    }

    public static void FromHalf(ReadOnlySpan<ushort> src, Span<float> dst) => FromHalf(src, dst, Widest);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FromHalf(ReadOnlySpan<ushort> src, Span<float> dst, SimdWidth width)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination is shorter than the source", nameof(dst));
        ref ushort si = ref MemoryMarshal.GetReference(src);
        ref uint di = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(dst));
        nuint n = (nuint)src.Length, i = 0;
        if (width >= SimdWidth.V512 && Vector512.IsHardwareAccelerated)
            for (; i + 32 <= n; i += 32)
            {
                var (lo, hi) = Vector512.Widen(Vector512.LoadUnsafe(ref si, i));
                FloatBits(lo).StoreUnsafe(ref di, i);
                FloatBits(hi).StoreUnsafe(ref di, i + 16);
            }
        if (width >= SimdWidth.V256 && Vector256.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref si, i));
                FloatBits(lo).StoreUnsafe(ref di, i);
                FloatBits(hi).StoreUnsafe(ref di, i + 8);
            }
        for (; i < n; i++) Unsafe.Add(ref di, i) = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(Unsafe.Add(ref si, i)));
    }

    // Half → float (after Giesen's half_to_float): shift exponent and mantissa into place and rebias; infinities and
    // NaNs get the top exponent (a NaN also the quiet bit, as System.Half gives); zeros and subnormals are
    // normalised exactly by one float subtraction.
    const uint HalfExponent = 0x7c00u << 13, HalfRebias = (127u - 15) << 23, HalfMagic = 113u << 23;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<uint> FloatBits(Vector512<uint> h)
    {
        var o = (h & Vector512.Create(0x7fffu)) << 13;
        var exponent = o & Vector512.Create(HalfExponent);
        o += Vector512.Create(HalfRebias);
        var special = o + Vector512.Create((128u - 16) << 23);
        special |= Vector512.ConditionalSelect(Vector512.GreaterThan(o, Vector512.Create(HalfRebias + HalfExponent)), Vector512.Create(0x00400000u), Vector512<uint>.Zero);
        var small = ((o + Vector512.Create(1u << 23)).AsSingle() - Vector512.Create(HalfMagic).AsSingle()).AsUInt32();
        o = Vector512.ConditionalSelect(Vector512.Equals(exponent, Vector512.Create(HalfExponent)), special, o);
        o = Vector512.ConditionalSelect(Vector512.Equals(exponent, Vector512<uint>.Zero), small, o);
        return o | ((h & Vector512.Create(0x8000u)) << 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<uint> FloatBits(Vector256<uint> h)
    {
        var o = (h & Vector256.Create(0x7fffu)) << 13;
        var exponent = o & Vector256.Create(HalfExponent);
        o += Vector256.Create(HalfRebias);
        var special = o + Vector256.Create((128u - 16) << 23);
        special |= Vector256.ConditionalSelect(Vector256.GreaterThan(o, Vector256.Create(HalfRebias + HalfExponent)), Vector256.Create(0x00400000u), Vector256<uint>.Zero);
        var small = ((o + Vector256.Create(1u << 23)).AsSingle() - Vector256.Create(HalfMagic).AsSingle()).AsUInt32();
        o = Vector256.ConditionalSelect(Vector256.Equals(exponent, Vector256.Create(HalfExponent)), special, o);
        o = Vector256.ConditionalSelect(Vector256.Equals(exponent, Vector256<uint>.Zero), small, o);
        return o | ((h & Vector256.Create(0x8000u)) << 16);
    }

    public static void ToBFloat16(ReadOnlySpan<float> src, Span<ushort> dst) => ToBFloat16(src, dst, Widest);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToBFloat16(ReadOnlySpan<float> src, Span<ushort> dst, SimdWidth width)
    {
        var s = MemoryMarshal.Cast<float, uint>(src);
        if (dst.Length < s.Length) throw new ArgumentException("destination is shorter than the source", nameof(dst));
        ref uint si = ref MemoryMarshal.GetReference(s);
        ref ushort di = ref MemoryMarshal.GetReference(dst);
        nuint n = (nuint)s.Length, i = 0;
        if (width >= SimdWidth.V512 && Vector512.IsHardwareAccelerated)
            for (; i + 32 <= n; i += 32)
                Vector512.Narrow(BFloat16Bits(Vector512.LoadUnsafe(ref si, i)), BFloat16Bits(Vector512.LoadUnsafe(ref si, i + 16))).StoreUnsafe(ref di, i);
        if (width >= SimdWidth.V256 && Vector256.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16)
                Vector256.Narrow(BFloat16Bits(Vector256.LoadUnsafe(ref si, i)), BFloat16Bits(Vector256.LoadUnsafe(ref si, i + 8))).StoreUnsafe(ref di, i);
        for (; i < n; i++) Unsafe.Add(ref di, i) = BFloat16Bits(Unsafe.Add(ref si, i));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<uint> BFloat16Bits(Vector512<uint> u)
    {
        var rounded = (u + Vector512.Create(0x7fffu) + ((u >> 16) & Vector512<uint>.One)) >> 16;
        var isNan = Vector512.GreaterThan(u & Vector512.Create(0x7fffffffu), Vector512.Create(F32Infinity));
        return Vector512.ConditionalSelect(isNan, (u >> 16) | Vector512.Create(64u), rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<uint> BFloat16Bits(Vector256<uint> u)
    {
        var rounded = (u + Vector256.Create(0x7fffu) + ((u >> 16) & Vector256<uint>.One)) >> 16;
        var isNan = Vector256.GreaterThan(u & Vector256.Create(0x7fffffffu), Vector256.Create(F32Infinity));
        return Vector256.ConditionalSelect(isNan, (u >> 16) | Vector256.Create(64u), rounded);
    }

    /// <summary>Round-to-nearest-even float → bfloat16 bits; NaN stays a (quiet) NaN, as in ggml.</summary>
    public static ushort BFloat16Bits(uint u) =>
        (u & 0x7fffffff) > 0x7f800000 ? (ushort)((u >> 16) | 64) : (ushort)((u + 0x7fff + ((u >> 16) & 1)) >> 16);

    public static void FromBFloat16(ReadOnlySpan<ushort> src, Span<float> dst) => FromBFloat16(src, dst, Widest);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FromBFloat16(ReadOnlySpan<ushort> src, Span<float> dst, SimdWidth width)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination is shorter than the source", nameof(dst));
        ref ushort si = ref MemoryMarshal.GetReference(src);
        ref uint di = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(dst));
        nuint n = (nuint)src.Length, i = 0;
        if (width >= SimdWidth.V512 && Vector512.IsHardwareAccelerated)
            for (; i + 32 <= n; i += 32)
            {
                var (lo, hi) = Vector512.Widen(Vector512.LoadUnsafe(ref si, i));
                (lo << 16).StoreUnsafe(ref di, i);
                (hi << 16).StoreUnsafe(ref di, i + 16);
            }
        if (width >= SimdWidth.V256 && Vector256.IsHardwareAccelerated)
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref si, i));
                (lo << 16).StoreUnsafe(ref di, i);
                (hi << 16).StoreUnsafe(ref di, i + 8);
            }
        for (; i < n; i++) Unsafe.Add(ref di, i) = (uint)Unsafe.Add(ref si, i) << 16;
    }
}
