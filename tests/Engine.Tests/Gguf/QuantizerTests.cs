using Engine.Gguf;
using Engine.Gguf.LlamaCpp;
using Engine.Gguf.Quantization;

namespace Engine.Tests.Gguf;

/// <summary>Engine's codecs against hand-worked blocks and against ggml's own reference quantizers.</summary>
public class QuantizerTests
{
    static readonly GgmlType[] Quantized = { GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_K, GgmlType.Q6_K };

    /// <summary>Rows with the awkward cases: zero blocks, constant blocks, outliers, tiny and huge scales, signs.</summary>
    static float[] TestValues(int rows, int rowLength, int seed)
    {
        var rng = new Random(seed);
        var v = new float[rows * rowLength];
        for (int r = 0; r < rows; r++)
        {
            float scale = (float)Math.Pow(10, rng.Next(-4, 3));
            for (int i = 0; i < rowLength; i++)
            {
                double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
                v[r * rowLength + i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2)) * scale;
            }
            switch (r % 6)
            {
                case 1: Array.Clear(v, r * rowLength, 32); break;                       // a zero block
                case 2: Array.Fill(v, 0.25f * scale, r * rowLength, 64); break;          // constant blocks
                case 3: v[r * rowLength + rng.Next(rowLength)] = 50 * scale; break;      // an outlier
                case 4: for (int i = 0; i < rowLength; i++) v[r * rowLength + i] = Math.Abs(v[r * rowLength + i]); break; // all positive
                case 5: for (int i = 0; i < rowLength; i++) v[r * rowLength + i] = -Math.Abs(v[r * rowLength + i]); break; // all negative
            }
        }
        return v;
    }

    [SkippableFact]
    public void QuantizationIsByteIdenticalToGgml()
    {
        LlamaCppRequirement.Require();
        const int rows = 48, rowLength = 512;
        foreach (var type in Quantized)
            for (int seed = 1; seed <= 3; seed++)
            {
                var values = TestValues(rows, rowLength, seed);
                var expected = GgmlReference.Quantize(type, values, rows, rowLength);
                var actual = new byte[expected.Length];
                GgmlCodec.Encode(type, values, actual);
                int firstDiff = -1;
                for (int i = 0; i < actual.Length; i++)
                    if (actual[i] != expected[i]) { firstDiff = i; break; }
                Assert.True(firstDiff < 0, $"{type} seed {seed}: first differing byte {firstDiff} (block {firstDiff / GgmlTypes.BlockBytes(type)})");
            }
    }

    [SkippableFact]
    public void DequantizationMatchesGgml()
    {
        LlamaCppRequirement.Require();
        const int rows = 16, rowLength = 256;
        foreach (var type in Quantized.Append(GgmlType.F16).Append(GgmlType.BF16))
        {
            var values = TestValues(rows, rowLength, 7);
            var encoded = new byte[GgmlTypes.RowBytes(type, rowLength) * rows];
            GgmlCodec.Encode(type, values, encoded);
            var expected = GgmlReference.Dequantize(type, encoded, values.Length);
            var actual = new float[values.Length];
            GgmlCodec.Decode(type, encoded, actual);
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void Q8_0HandWorkedBlock()
    {
        // max |x| = 2.54 → d = 0.02 (fp16 0.0200042724609375); q = round(x / d) with ties away from zero.
        var x = new float[32];
        x[0] = 2.54f; x[1] = -1.27f; x[2] = 0.01f; x[3] = -0.03f; x[4] = 1.0f;
        var y = new byte[34];
        GgmlCodec.Encode(GgmlType.Q8_0, x, y);
        float d = (float)BitConverter.UInt16BitsToHalf((ushort)(y[0] | y[1] << 8));
        Assert.Equal((float)(Half)(2.54f / 127), d);
        float id = 1f / (2.54f / 127);
        Assert.Equal(127, (sbyte)y[2]);
        Assert.Equal(-64, (sbyte)y[3]);                      // -1.27/0.02 = -63.5 → -64 (away from zero)
        Assert.Equal((sbyte)MathF.Round(0.01f * id, MidpointRounding.AwayFromZero), (sbyte)y[4]);
        Assert.Equal(-2, (sbyte)y[5]);                       // -1.5 → -2
        Assert.Equal(50, (sbyte)y[6]);
        Assert.All(y.Skip(7), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Q4_0HandWorkedBlock()
    {
        // The largest magnitude is -4 → d = -4/-8 = 0.5, id = 2; q = min(15, trunc(x*2 + 8.5)).
        var x = new float[32];
        x[0] = -4f;   // -8 + 8.5 = 0.5 → 0
        x[1] = 3.9f;  // 7.8 + 8.5 = 16.3 → 16 → 15 (clamped)
        x[2] = 0.3f;  // 0.6 + 8.5 = 9.1 → 9
        x[16] = 1f;   // 2 + 8.5 = 10.5 → 10, high nibble of byte 0
        x[17] = -1.2f; // -2.4 + 8.5 = 6.1 → 6, high nibble of byte 1
        var y = new byte[18];
        GgmlCodec.Encode(GgmlType.Q4_0, x, y);
        Assert.Equal(0.5f, (float)BitConverter.UInt16BitsToHalf((ushort)(y[0] | y[1] << 8)));
        Assert.Equal(0 | 10 << 4, y[2]);
        Assert.Equal(15 | 6 << 4, y[3]);
        Assert.Equal(9 | 8 << 4, y[4]);
        Assert.All(y.Skip(5), b => Assert.Equal(8 | 8 << 4, b)); // zeros are level 8
        var back = new float[32];
        GgmlCodec.Decode(GgmlType.Q4_0, y, back);
        Assert.Equal(new[] { -4f, 3.5f, 0.5f }, back.Take(3));
        Assert.Equal(1f, back[16]);
        Assert.Equal(-1f, back[17]);
    }

    [Fact]
    public void HalfConversionRoundsLikeSystemHalf()
    {
        var rng = new Random(3);
        var values = new List<float> { 0f, -0f, 65504f, 65520f, 65519.99f, 1e-8f, 5.96e-8f, 2.98e-8f, 6.1e-5f, 6.097e-5f, float.PositiveInfinity, float.NegativeInfinity, 1e10f, -1e10f };
        for (int i = 0; i < 100_000; i++) values.Add(BitConverter.Int32BitsToSingle(rng.Next()) * (rng.Next(2) == 0 ? 1 : -1));
        for (int i = 0; i < 10_000; i++) values.Add((float)(rng.NextDouble() * 2 - 1) * MathF.Pow(2, rng.Next(-26, 17)));
        var src = values.Where(v => !float.IsNaN(v)).ToArray();
        var dst = new byte[src.Length * 2];
        GgmlCodec.Encode(GgmlType.F16, src, dst);
        for (int i = 0; i < src.Length; i++)
            Assert.True(BitConverter.HalfToUInt16Bits((Half)src[i]) == (ushort)(dst[2 * i] | dst[2 * i + 1] << 8), $"value {src[i]:R}");
    }

    [Fact]
    public void BFloat16RoundsToNearestEven()
    {
        // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1+2^-7: ties go to the even mantissa (1).
        float tieDown = BitConverter.Int32BitsToSingle(0x3F808000);
        float tieUp = BitConverter.Int32BitsToSingle(0x3F818000);   // halfway above an odd mantissa → up
        float above = BitConverter.Int32BitsToSingle(0x3F808001);
        var src = new[] { tieDown, tieUp, above, 1f, -2.5f }.Concat(Enumerable.Repeat(3.14159f, 20)).ToArray();
        var dst = new byte[src.Length * 2];
        GgmlCodec.Encode(GgmlType.BF16, src, dst);
        ushort At(int i) => (ushort)(dst[2 * i] | dst[2 * i + 1] << 8);
        Assert.Equal(0x3F80, At(0));
        Assert.Equal(0x3F82, At(1));
        Assert.Equal(0x3F81, At(2));
        Assert.Equal(0x3F80, At(3));
        Assert.Equal(0xC020, At(4));
        Assert.Equal(0x4049, At(24)); // 3.14159 = 0x40490FD0 → 0x4049
    }

    [Fact]
    public void RoundTripErrorIsBoundedPerType()
    {
        var values = TestValues(12, 256, 11);
        // Half a quantization step, relative to the row's largest magnitude: 1/254 for 8 bits, 1/16 for 4 bits.
        foreach (var (type, relative) in new[] { (GgmlType.Q8_0, 0.004), (GgmlType.Q6_K, 0.02), (GgmlType.Q5_0, 0.032), (GgmlType.Q4_K, 0.07), (GgmlType.Q4_0, 0.0625) })
        {
            var encoded = new byte[GgmlTypes.RowBytes(type, 256) * 12];
            GgmlCodec.Encode(type, values, encoded);
            var back = new float[values.Length];
            GgmlCodec.Decode(type, encoded, back);
            for (int r = 0; r < 12; r++)
            {
                var row = values.AsSpan(r * 256, 256);
                double max = row.ToArray().Max(v => Math.Abs((double)v));
                double err = Math.Sqrt(Enumerable.Range(0, 256).Average(i => Math.Pow(values[r * 256 + i] - back[r * 256 + i], 2)));
                // Tiny rows also pay for the fp16 scale's resolution (subnormal steps of 2^-24, times up to 127 levels).
                Assert.True(err <= relative * max + 127 * Math.Pow(2, -25), $"{type} row {r}: rms error {err} vs max |x| {max}");
            }
        }
    }

    /// <summary>ggml's quantize_row_q8_0_ref written plainly (the scalar code the vector path replaced).</summary>
    static byte[] ReferenceQ8_0(float[] x)
    {
        var y = new byte[x.Length / 32 * 34];
        for (int b = 0; b < x.Length / 32; b++)
        {
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = Math.Max(amax, MathF.Abs(x[b * 32 + j]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            ushort h = BitConverter.HalfToUInt16Bits((Half)d);
            y[b * 34] = (byte)h;
            y[b * 34 + 1] = (byte)(h >> 8);
            for (int j = 0; j < 32; j++) y[b * 34 + 2 + j] = (byte)(sbyte)MathF.Round(x[b * 32 + j] * id, MidpointRounding.AwayFromZero);
        }
        return y;
    }

    [Theory, MemberData(nameof(FloatConversionTests.Widths), MemberType = typeof(FloatConversionTests))]
    public void Q8_0VectorPathEqualsTheScalarReference(SimdWidth width)
    {
        var blocks = new List<float[]>();
        var values = TestValues(24, 256, 13);
        for (int i = 0; i < values.Length; i += 32) blocks.Add(values[i..(i + 32)]);
        // Ties: amax 127 makes d = 1 and id = 1, so x.5 values round away from zero.
        blocks.Add(Enumerable.Range(0, 32).Select(j => j == 0 ? 127f : (j % 2 == 0 ? 1 : -1) * (j + 0.5f)).ToArray());
        // Signed zeros, an all-zero block, subnormals (an infinite id), infinities and NaNs.
        blocks.Add(Enumerable.Range(0, 32).Select(j => j % 2 == 0 ? -0f : 0f).ToArray());
        blocks.Add(Enumerable.Range(0, 32).Select(j => (j - 16) * 1e-40f).ToArray());
        blocks.Add(Enumerable.Range(0, 32).Select(j => j == 3 ? float.PositiveInfinity : j * 0.1f).ToArray());
        blocks.Add(Enumerable.Range(0, 32).Select(j => j == 5 ? float.NegativeInfinity : j == 6 ? float.NaN : -j * 0.1f).ToArray());
        blocks.Add(Enumerable.Range(0, 32).Select(j => j == 31 ? float.NaN : j * 1000f).ToArray());
        blocks.Add(Enumerable.Range(0, 32).Select(j => j == 0 ? 3e38f : 1f).ToArray());
        // Two NaNs with different payloads: the scale is the first one (as Math.Max scans).
        blocks.Add(Enumerable.Range(0, 32).Select(j => j == 9 ? BitConverter.UInt32BitsToSingle(0x7fc00000) : j == 20 ? BitConverter.UInt32BitsToSingle(0xffc02000) : j * 0.01f).ToArray());
        blocks.Add(Enumerable.Range(0, 32).Select(j => j == 25 ? BitConverter.UInt32BitsToSingle(0x7fc00000) : j == 2 ? BitConverter.UInt32BitsToSingle(0xffc02000) : j * 0.01f).ToArray());
        var x = blocks.SelectMany(b => b).ToArray();
        var expected = ReferenceQ8_0(x);
        var actual = new byte[expected.Length];
        Q8_0Codec.Quantize(x, actual, width);
        for (int i = 0; i < actual.Length; i++)
            Assert.True(actual[i] == expected[i], $"{width}: byte {i} (block {i / 34}) is {actual[i]}, expected {expected[i]}");
    }
}

/// <summary>The rounding sizes behind the faithfulness tolerance, recomputed from the codecs and a plain Q8_K.</summary>
public class ActivationRoundingTests
{
    [Theory]
    [InlineData(ActivationRounding.F16), InlineData(ActivationRounding.BF16), InlineData(ActivationRounding.Q8_0), InlineData(ActivationRounding.Q8_K)]
    public void EpsilonIsTheRmsRelativeErrorOfRoundingANormalVector(ActivationRounding rounding)
    {
        var rng = new Random(5);
        var x = new float[1 << 16];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        var y = new float[x.Length];
        if (rounding == ActivationRounding.Q8_K)
        {
            // quantize_row_q8_K_ref: 256-element blocks, iscale = -127 / (signed value of largest magnitude), F32 scale.
            for (int b = 0; b < x.Length; b += 256)
            {
                float max = 0, amax = 0;
                for (int j = 0; j < 256; j++) if (Math.Abs(x[b + j]) > amax) { amax = Math.Abs(x[b + j]); max = x[b + j]; }
                float iscale = -127f / max;
                for (int j = 0; j < 256; j++) y[b + j] = Math.Min(127, (int)MathF.Round(iscale * x[b + j])) / iscale;
            }
        }
        else
        {
            var type = rounding switch { ActivationRounding.F16 => GgmlType.F16, ActivationRounding.BF16 => GgmlType.BF16, _ => GgmlType.Q8_0 };
            var bytes = new byte[GgmlTypes.RowBytes(type, x.Length)];
            GgmlCodec.Encode(type, x, bytes);
            GgmlCodec.Decode(type, bytes, y);
        }
        double err = 0, norm = 0;
        for (int i = 0; i < x.Length; i++) { err += Math.Pow(y[i] - x[i], 2); norm += (double)x[i] * x[i]; }
        double epsilon = Math.Sqrt(err / norm);
        Assert.InRange(FaithfulnessTolerance.Epsilon(rounding), 0.97 * epsilon, 1.03 * epsilon);
    }
}
