using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Engine.Gguf.Quantization;
using static TorchSharp.torch;

namespace Engine.Tests.Gguf;

/// <summary>
/// The vectorised F32 ↔ F16/BF16 conversions, at every vector width this machine runs, against scalar references
/// over the special values: every half and bfloat16 value, the exact midpoints between neighbours (ties to even)
/// and the floats beside them, subnormals, overflow to infinity, and NaNs with payloads. References: System.Half
/// (F16, which rounds as x86's F16C does), a textbook round-to-nearest-even on the bits (BF16), and PyTorch's own
/// converters for every non-NaN value.
/// </summary>
public class FloatConversionTests
{
    public static TheoryData<SimdWidth> Widths()
    {
        var widths = new TheoryData<SimdWidth> { SimdWidth.Scalar };
        if (Vector256.IsHardwareAccelerated) widths.Add(SimdWidth.V256);
        if (Vector512.IsHardwareAccelerated) widths.Add(SimdWidth.V512);
        return widths;
    }

    static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    /// <summary>The 16-bit patterns of a Float16 or BFloat16 tensor.</summary>
    static ushort[] Bits(TorchSharp.torch.Tensor t) => MemoryMarshal.Cast<byte, ushort>(t.bytes).ToArray();

    /// <summary>Floats that probe F32 → F16 rounding: around every half value and every midpoint, plus NaN payloads.</summary>
    static float[] HalfProbes()
    {
        var bits = new List<uint>();
        for (uint h = 0; h < 0x7c00; h++)
        {
            // The half's value, and the midpoint to the next half (a tie), each with the floats just beside it.
            uint exact = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf((ushort)h));
            uint next = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf((ushort)(h + 1)));
            uint mid = BitConverter.SingleToUInt32Bits((F(exact) + F(next)) / 2); // exact: halves have 11 significant bits
            foreach (uint b in new[] { exact, mid })
                for (int d = -2; d <= 2; d++) bits.Add((uint)(b + d));
        }
        // Above the largest half (65504): up to the rounding boundary 65520 and beyond to infinity.
        foreach (float v in new[] { 65504f, 65519.996f, 65520f, 65520.004f, 65536f, 1e6f, 3.4e38f, float.PositiveInfinity }) bits.Add(BitConverter.SingleToUInt32Bits(v));
        // Below the smallest subnormal half (2^-24): 2^-25 is a tie that rounds to zero, just above it to 2^-24.
        foreach (float v in new[] { 5.960464e-8f, 2.9802322e-8f, 2.9802326e-8f, 1e-10f, 1e-45f, 1.1754942e-38f }) bits.Add(BitConverter.SingleToUInt32Bits(v));
        // NaNs: quiet and signalling, payload bits above and below the 10 a half keeps, and the all-ones payload.
        for (uint payload = 1; payload < 0x800000; payload = payload * 3 + 1) { bits.Add(0x7f800000 | payload); bits.Add(0x7fc00000 | payload); }
        foreach (uint p in new uint[] { 0x1, 0x1fff, 0x2000, 0x3fffff, 0x400000, 0x7fffff, 0x7fe000, 0x001000 }) bits.Add(0x7f800000 | p);
        var rng = new Random(5);
        for (int i = 0; i < 200_000; i++) bits.Add((uint)rng.NextInt64(0, 1L << 32));
        // Both signs of everything.
        return bits.Concat(bits.Select(b => b ^ 0x80000000)).Select(F).ToArray();
    }

    static ushort[] ConvertInTwoParts(float[] src, SimdWidth width, Action<ReadOnlySpan<float>, Span<ushort>, SimdWidth> convert, int offset = 0)
    {
        var dst = new ushort[src.Length];
        // An odd start and length put elements in every lane position and exercise the scalar tail.
        convert(src.AsSpan(0, offset), dst.AsSpan(0, offset), width);
        convert(src.AsSpan(offset), dst.AsSpan(offset), width);
        return dst;
    }

    [Theory, MemberData(nameof(Widths))]
    public void ToHalfEqualsSystemHalfBitForBit(SimdWidth width)
    {
        var src = HalfProbes();
        var dst = ConvertInTwoParts(src, width, FloatCodecs.ToHalf, offset: 7);
        for (int i = 0; i < src.Length; i++)
        {
            ushort expected = BitConverter.HalfToUInt16Bits((Half)src[i]);
            if (dst[i] != expected)
                Assert.Fail($"{width}: {BitConverter.SingleToUInt32Bits(src[i]):X8} → {dst[i]:X4}, expected {expected:X4}");
        }
    }

    [Fact]
    public void ToHalfReferenceAgreesWithPyTorchOnEveryNonNaN()
    {
        var src = HalfProbes().Where(v => !float.IsNaN(v)).ToArray();
        using var floats = tensor(src);
        using var halves = floats.to(ScalarType.Float16);
        var torchBits = Bits(halves);
        for (int i = 0; i < src.Length; i++)
            Assert.True(BitConverter.HalfToUInt16Bits((Half)src[i]) == torchBits[i], $"{BitConverter.SingleToUInt32Bits(src[i]):X8}");
    }

    [Fact]
    public void NaNsKeepSignAndTopPayloadAndBecomeQuiet()
    {
        // Hand-worked: the quiet bit 0x200 is set and the top 9 payload bits follow, as F16C does.
        var src = new[] { F(0x7f800001), F(0x7fa00000), F(0xffbfffff), F(0x7f802000), F(0x7fc00000) };
        var expected = new ushort[] { 0x7e00, 0x7f00, 0xffff, 0x7e01, 0x7e00 };
        foreach (var width in new[] { SimdWidth.Scalar, SimdWidth.V256, SimdWidth.V512 })
        {
            var padded = Enumerable.Repeat(src, 8).SelectMany(x => x).ToArray(); // 40 values: full vectors and a tail
            var dst = new ushort[padded.Length];
            FloatCodecs.ToHalf(padded, dst, width);
            for (int i = 0; i < padded.Length; i++) Assert.Equal(expected[i % src.Length], dst[i]);
        }
    }

    [Theory, MemberData(nameof(Widths))]
    public void FromHalfEqualsSystemHalfForAllHalves(SimdWidth width)
    {
        var src = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var dst = new float[src.Length];
        FloatCodecs.FromHalf(src.AsSpan(0, 3), dst.AsSpan(0, 3), width);
        FloatCodecs.FromHalf(src.AsSpan(3), dst.AsSpan(3), width);
        for (int i = 0; i < src.Length; i++)
        {
            uint expected = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf(src[i]));
            uint actual = BitConverter.SingleToUInt32Bits(dst[i]);
            if (actual != expected) Assert.Fail($"{width}: half {src[i]:X4} → {actual:X8}, expected {expected:X8}");
        }
        // PyTorch widens every non-NaN half to the same float.
        var finite = src.Where(h => !Half.IsNaN(BitConverter.UInt16BitsToHalf(h))).ToArray();
        using var stored = empty(finite.Length, ScalarType.Float16);
        stored.bytes = MemoryMarshal.AsBytes(finite.AsSpan());
        using var t = stored.to(ScalarType.Float32);
        var torchValues = t.data<float>().ToArray();
        for (int i = 0; i < finite.Length; i++)
            Assert.Equal(BitConverter.SingleToUInt32Bits(torchValues[i]), BitConverter.SingleToUInt32Bits(dst[finite[i]]));
    }

    /// <summary>Round to nearest even on the bits; a NaN keeps its top bits and is made quiet (ggml's rule).</summary>
    static ushort ReferenceBFloat16(uint u)
    {
        if ((u & 0x7fffffff) > 0x7f800000) return (ushort)((u >> 16) | 0x40);
        uint upper = u >> 16, rest = u & 0xffff;
        if (rest > 0x8000 || (rest == 0x8000 && (upper & 1) == 1)) upper++;
        return (ushort)upper;
    }

    static float[] BFloat16Probes()
    {
        var bits = new List<uint>();
        // Every bfloat16 value, with low halves that are exact, just above/below the tie, the tie, and the extremes.
        for (uint upper = 0; upper < 0x10000; upper++)
            foreach (uint low in new uint[] { 0, 1, 0x7fff, 0x8000, 0x8001, 0xffff })
                bits.Add(upper << 16 | low);
        return bits.Select(F).ToArray();
    }

    [Theory, MemberData(nameof(Widths))]
    public void ToBFloat16EqualsTheReferenceForEveryValueAndTie(SimdWidth width)
    {
        var src = BFloat16Probes();
        var dst = ConvertInTwoParts(src, width, FloatCodecs.ToBFloat16, offset: 5);
        for (int i = 0; i < src.Length; i++)
        {
            ushort expected = ReferenceBFloat16(BitConverter.SingleToUInt32Bits(src[i]));
            if (dst[i] != expected) Assert.Fail($"{width}: {BitConverter.SingleToUInt32Bits(src[i]):X8} → {dst[i]:X4}, expected {expected:X4}");
        }
    }

    [Fact]
    public void BFloat16ReferenceAgreesWithPyTorchOnEveryNonNaN()
    {
        var src = BFloat16Probes().Where(v => !float.IsNaN(v)).ToArray();
        using var floats = tensor(src);
        using var t = floats.to(ScalarType.BFloat16);
        var torchBits = Bits(t);
        for (int i = 0; i < src.Length; i++)
            Assert.True(ReferenceBFloat16(BitConverter.SingleToUInt32Bits(src[i])) == torchBits[i], $"{BitConverter.SingleToUInt32Bits(src[i]):X8}");
    }

    [Theory, MemberData(nameof(Widths))]
    public void FromBFloat16IsExactForAllValues(SimdWidth width)
    {
        var src = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var dst = new float[src.Length];
        FloatCodecs.FromBFloat16(src.AsSpan(0, 9), dst.AsSpan(0, 9), width);
        FloatCodecs.FromBFloat16(src.AsSpan(9), dst.AsSpan(9), width);
        for (int i = 0; i < src.Length; i++) Assert.Equal((uint)src[i] << 16, BitConverter.SingleToUInt32Bits(dst[i]));
    }

    [Fact]
    public void ShortDestinationsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => FloatCodecs.ToHalf(new float[40], new ushort[39]));
        Assert.Throws<ArgumentException>(() => FloatCodecs.ToBFloat16(new float[40], new ushort[39]));
        Assert.Throws<ArgumentException>(() => FloatCodecs.FromHalf(new ushort[40], new float[39]));
        Assert.Throws<ArgumentException>(() => FloatCodecs.FromBFloat16(new ushort[40], new float[39]));
    }
}
