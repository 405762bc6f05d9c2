using Engine.Kernels.Quantized;
using static TorchSharp.torch;

namespace Engine.Tests.Kernels.Quantized;

/// <summary>The formats: code books, hand-worked bits, bits against the plain reference, round-trip bounds.</summary>
public class QuantFormatTests
{
    static float[] RandomWeights(int rows, int cols, int seed, float std = 0.02f)
    {
        var rng = new Random(seed);
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++)
        {
            // Box-Muller normal, a zero block, and outliers: the shapes real weights take.
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            w[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        for (int i = 64; i < Math.Min(128, w.Length); i++) w[i] = 0;
        if (w.Length > 1000) { w[300] = 0.5f; w[999] = -0.7f; }
        return w;
    }

    static QuantizedWeight Quantize(float[] w, int rows, int cols, QuantFormat format)
    {
        using var t = tensor(w).reshape(rows, cols);
        return QuantizedWeight.Quantize(t, format);
    }

    static T[] Read<T>(Tensor t) where T : unmanaged => t.cpu().data<T>().ToArray();

    [Fact]
    public void Nf4_code_book_is_qloras()
    {
        Assert.Equal(QuantReference.Nf4, QuantizedNativeCodes.Nf4());
    }

    [Fact]
    public void Dynamic_code_is_bitsandbytes_construction_bit_for_bit()
    {
        float[] expected = QuantReference.DynamicCode();
        float[] actual = QuantizedNativeCodes.Dynamic();
        Assert.Equal(256, expected.Length);
        for (int i = 0; i < 256; i++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                $"entry {i}: {actual[i]:R} vs {expected[i]:R}");
        Assert.Equal(1f, actual[255]);
        Assert.Equal(0f, actual[127]);
        Assert.Equal(-0.99296875, actual[0], 1e-7); // -(0.9859375 + 1) / 2, the largest negative mean
    }

    [Fact]
    public void Nf4_hand_worked_block()
    {
        // absmax 2: normalised 1, 0.5, -0.5, 0.25, 0, -1, 0.05, then zeros. Nearest codes: 1 → 15; 0.5 lies below
        // the 12|13 midpoint 0.50166 → 12; -0.5 below the 2|3 midpoint -0.46 → 2; 0.25 below 0.2920 → 10; 0 → 7;
        // -1 → 0; 0.05 above the 7|8 midpoint 0.0398 → 8; 0 → 7. Bytes pair (high, low) nibbles.
        var w = new float[64];
        float[] head = { 2f, 1f, -1f, 0.5f, 0f, -2f, 0.1f };
        head.CopyTo(w, 0);
        using var q = Quantize(w, 1, 64, QuantFormat.Nf4);
        byte[] data = Read<byte>(q.Data);
        Assert.Equal(new byte[] { 0xFC, 0x2A, 0x70, 0x87, 0x77 }, data[..5]);
        Assert.All(data[4..], b => Assert.Equal(0x77, b));
        Assert.Equal(new[] { 2f }, Read<float>(q.Absmax!));
        using var d = q.Dequantize();
        float[] v = Read<float>(d);
        Assert.Equal(new[] { 2f, 0.44070982933044434f * 2f, -0.5250730514526367f * 2f, 0.24611230194568634f * 2f, 0f, -2f, 0.07958029955625534f * 2f, 0f },
            v[..8]);
    }

    [Fact]
    public void Int8_hand_worked_block()
    {
        // absmax 1.27: scale = 1.27f/127; 1.27 → 127, -0.5 → -50, 0.3 → 30, 0.004 → 0 (0.4 rounds down).
        var w = new float[64];
        new[] { 1.27f, -0.5f, 0.3f, 0.004f }.CopyTo(w, 0);
        using var q = Quantize(w, 2, 32, QuantFormat.Int8);
        sbyte[] data = Read<byte>(q.Data).Select(b => (sbyte)b).ToArray();
        Assert.Equal(new sbyte[] { 127, -50, 30, 0 }, data[..4]);
        float scale = 1.27f / 127f;
        Assert.Equal(new[] { scale }, Read<float>(q.Absmax!));
        using var d = q.Dequantize();
        Assert.Equal(new[] { 127 * scale, -50 * scale, 30 * scale, 0f }, Read<float>(d)[..4]);
    }

    [Fact]
    public void Nf4_double_quant_hand_worked()
    {
        // Two blocks, absmax 1 and 3: offset 2, centred -1 and 1, absmax2 1; nearest dynamic entries: -1 → entry 0
        // (-0.99296875), 1 → entry 255 (1.0). Dequantized absmax: 2 - 0.99296875 = 1.00703125 and 3.
        var w = new float[128];
        w[0] = 1f;
        w[64] = -3f;
        using var q = Quantize(w, 2, 64, QuantFormat.Nf4DoubleQuant);
        Assert.Null(q.Absmax);
        Assert.Equal(new byte[] { 0, 255 }, Read<byte>(q.QuantizedAbsmax!));
        Assert.Equal(new[] { 1f }, Read<float>(q.Absmax2!));
        Assert.Equal(2f, q.AbsmaxOffset);
        byte[] data = Read<byte>(q.Data);
        Assert.Equal(0xF7, data[0]);  // 1/1 → 15, then zeros → 7
        Assert.Equal(0x07, data[32]); // -3/3 → 0
        using var d = q.Dequantize();
        float[] v = Read<float>(d);
        Assert.Equal(1.00703125, v[0], 1e-6);
        Assert.Equal(-3f, v[64]);
    }

    [Theory]
    [InlineData(1, 64)]
    [InlineData(3, 70)]
    [InlineData(5, 7)]
    [InlineData(96, 700)]
    [InlineData(257, 320)]
    public void Quantized_bits_equal_the_plain_reference(int rows, int cols)
    {
        float[] w = RandomWeights(rows, cols, rows * 1000 + cols);
        using (var q = Quantize(w, rows, cols, QuantFormat.Nf4))
        {
            var r = QuantReference.QuantizeNf4(w);
            Assert.Equal(r.Data, Read<byte>(q.Data));
            Assert.Equal(r.Absmax, Read<float>(q.Absmax!));
        }
        using (var q = Quantize(w, rows, cols, QuantFormat.Nf4DoubleQuant))
        {
            var r = QuantReference.QuantizeNf4DoubleQuant(w);
            Assert.Equal(r.Data, Read<byte>(q.Data));
            Assert.Equal(r.QAbsmax, Read<byte>(q.QuantizedAbsmax!));
            Assert.Equal(r.Absmax2, Read<float>(q.Absmax2!));
            Assert.Equal(r.Offset, q.AbsmaxOffset);
            Assert.Equal(QuantReference.DynamicCode(), Read<float>(q.AbsmaxCode!));
        }
        using (var q = Quantize(w, rows, cols, QuantFormat.Int8))
        {
            var r = QuantReference.QuantizeInt8(w);
            Assert.Equal(r.Data, Read<byte>(q.Data).Select(b => (sbyte)b).ToArray());
            Assert.Equal(r.Scale, Read<float>(q.Absmax!));
        }
    }

    /// <summary>
    /// Round-trip error bounds from the formats: NF4 is off by at most half the widest gap of its code book
    /// ((1 - 0.6962) / 2 = 0.1519) times the block absmax; double quantization adds the error of the absmax,
    /// at most half the widest gap of the dynamic code (0.9/64/2 = 0.00703) times the group scale; int8 is off by
    /// at most half a step, scale / 2.
    /// </summary>
    [Theory]
    [InlineData(QuantFormat.Nf4)]
    [InlineData(QuantFormat.Nf4DoubleQuant)]
    [InlineData(QuantFormat.Int8)]
    public void Round_trip_error_is_within_the_formats_bound(QuantFormat format)
    {
        const int rows = 300, cols = 448; // 2100 blocks: several double-quant groups
        float[] w = RandomWeights(rows, cols, 7);
        using var q = Quantize(w, rows, cols, format);
        using var d = q.Dequantize();
        float[] v = Read<float>(d);
        float[] absmax = QuantReference.QuantizeNf4(w).Absmax;
        float[]? absmax2 = format == QuantFormat.Nf4DoubleQuant ? Read<float>(q.Absmax2!) : null;
        double worstRatio = 0;
        for (int i = 0; i < w.Length; i++)
        {
            int b = i / 64;
            double bound = format switch
            {
                QuantFormat.Nf4 => 0.15191 * absmax[b],
                QuantFormat.Nf4DoubleQuant => 0.15191 * absmax[b] + 0.00704 * absmax2![b / 256],
                _ => absmax[b] / 127.0 / 2.0,
            } * (1 + 1e-5) + 1e-12;
            double err = Math.Abs(v[i] - (double)w[i]);
            Assert.True(err <= bound, $"element {i}: |{v[i]} - {w[i]}| = {err} > {bound}");
            worstRatio = Math.Max(worstRatio, err / bound);
        }
        Assert.True(worstRatio > 0.5, $"the bound is loose: worst error is {worstRatio:P0} of it"); // the bound is attained, not vacuous
    }

    [Fact]
    public void Bf16_weights_quantize_as_their_exact_values_and_deterministically()
    {
        float[] w = RandomWeights(40, 128, 3);
        using var bf = tensor(w).reshape(40, 128).to(ScalarType.BFloat16);
        using var asFloat = bf.to(ScalarType.Float32);
        using var a = QuantizedWeight.Quantize(bf, QuantFormat.Nf4DoubleQuant);
        using var b = QuantizedWeight.Quantize(asFloat, QuantFormat.Nf4DoubleQuant);
        using var c = QuantizedWeight.Quantize(bf, QuantFormat.Nf4DoubleQuant);
        Assert.Equal(Read<byte>(a.Data), Read<byte>(b.Data));
        Assert.Equal(Read<byte>(a.QuantizedAbsmax!), Read<byte>(c.QuantizedAbsmax!));
        Assert.Equal(Read<byte>(a.Data), Read<byte>(c.Data));
        using var d16 = a.Dequantize(ScalarType.BFloat16);
        using var d32 = a.Dequantize();
        Assert.Equal(Read<float>(d32.to(ScalarType.BFloat16).to(ScalarType.Float32)), Read<float>(d16.to(ScalarType.Float32)));
    }

    [Theory]
    [InlineData(QuantFormat.Nf4, 0.5625)]
    [InlineData(QuantFormat.Nf4DoubleQuant, 0.5 + 1.0 / 64 + 4.0 / (64 * 256))]
    [InlineData(QuantFormat.Int8, 1.0625)]
    public void Bytes_per_parameter_matches_the_stored_bytes(QuantFormat format, double expected)
    {
        Assert.Equal(expected, format.BytesPerParameter(), 12);
        using var q = Quantize(new float[512 * 1024], 512, 1024, format);
        double perTensor = format == QuantFormat.Nf4DoubleQuant ? 256 * 4 + 4 : 0;
        Assert.Equal(expected * 512 * 1024 + perTensor, q.Bytes, 6);
        Assert.Equal(expected, q.BytesPerParameter);
    }

    [Fact]
    public void Bad_weights_are_clear_errors()
    {
        using var oneD = zeros(64);
        Assert.Contains("2-D", Assert.Throws<EngineException>(() => QuantizedWeight.Quantize(oneD, QuantFormat.Nf4)).Message);
        using var nan = full(2, 64, float.NaN);
        Assert.Contains("NaN", Assert.Throws<EngineException>(() => QuantizedWeight.Quantize(nan, QuantFormat.Int8)).Message);
        using var ints = zeros(new long[] { 2, 64 }, ScalarType.Int32);
        Assert.Contains("floating point", Assert.Throws<EngineException>(() => QuantizedWeight.Quantize(ints, QuantFormat.Nf4)).Message);
        Assert.Contains("unknown quantization format 'fp4'", Assert.Throws<EngineException>(() => QuantFormats.Parse("fp4")).Message);
    }
}

/// <summary>The library's code tables (internal API).</summary>
internal static class QuantizedNativeCodes
{
    public static float[] Nf4() => Engine.Kernels.Quantized.QuantizedNative.Nf4Code();
    public static float[] Dynamic() => Engine.Kernels.Quantized.QuantizedNative.DynamicCode();
}
