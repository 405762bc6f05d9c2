using System.Runtime.CompilerServices;
using static Engine.Gguf.Quantization.QuantMath;

namespace Engine.Gguf.Quantization;

/// <summary>
/// Q4_K: super-blocks of 256 = 8 groups of 32, each with a 6-bit scale and a 6-bit min (packed in 12 bytes),
/// scaled by fp16 d and dmin; 4-bit levels in 128 bytes (144 bytes). The quantizer is ggml's reference one
/// (quantize_row_q4_K_ref): per group an error-searching asymmetric fit, then scales and mins to 6 bits.
/// </summary>
internal static class Q4KCodec
{
    public const int Block = 256, Bytes = 144;
    const int Groups = Block / 32;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<byte> levels = stackalloc byte[Block];
        Span<byte> scratch = stackalloc byte[32];
        Span<float> weights = stackalloc float[32];
        Span<float> mins = stackalloc float[Groups];
        Span<float> scales = stackalloc float[Groups];
        for (int b = 0; b < x.Length / Block; b++)
        {
            var xb = x.Slice(b * Block, Block);
            var yb = y.Slice(b * Bytes, Bytes);
            var packed = yb.Slice(4, 12);
            packed.Clear();
            float maxScale = 0, maxMin = 0;
            for (int j = 0; j < Groups; j++)
            {
                var xg = xb.Slice(32 * j, 32);
                float sumX2 = 0;
                for (int l = 0; l < 32; l++) sumX2 += xg[l] * xg[l];
                float avX = MathF.Sqrt(sumX2 / 32);
                for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(xg[l]);
                scales[j] = MakeQkx2Quants(xg, weights, 15, levels.Slice(32 * j, 32), out mins[j], scratch, -1f, 0.1f, 20);
                if (scales[j] > maxScale) maxScale = scales[j];
                if (mins[j] > maxMin) maxMin = mins[j];
            }
            float invScale = maxScale > 0 ? 63f / maxScale : 0f;
            float invMin = maxMin > 0 ? 63f / maxMin : 0f;
            for (int j = 0; j < Groups; j++)
            {
                // Truncation to a byte before the clamp is what the reference does (uint8_t ls = nearest_int(..)).
                byte ls = Math.Min((byte)63, (byte)NearestInt(invScale * scales[j]));
                byte lm = Math.Min((byte)63, (byte)NearestInt(invMin * mins[j]));
                if (j < 4)
                {
                    packed[j] = ls;
                    packed[j + 4] = lm;
                }
                else
                {
                    packed[j + 4] = (byte)((ls & 0xF) | ((lm & 0xF) << 4));
                    packed[j - 4] |= (byte)((ls >> 4) << 6);
                    packed[j] |= (byte)((lm >> 4) << 6);
                }
            }
            ushort dBits = ToHalfBits(maxScale / 63f), dminBits = ToHalfBits(maxMin / 63f);
            WriteU16(yb, 0, dBits);
            WriteU16(yb, 2, dminBits);
            float dAll = FromHalfBits(dBits), dminAll = FromHalfBits(dminBits);
            for (int j = 0; j < Groups; j++)
            {
                ScaleMin(j, packed, out byte sc, out byte m);
                float d = dAll * sc;
                if (d == 0) continue;
                float dm = dminAll * m;
                for (int i = 0; i < 32; i++)
                {
                    int l = NearestInt((xb[32 * j + i] + dm) / d);
                    levels[32 * j + i] = (byte)Math.Max(0, Math.Min(15, l));
                }
            }
            var qs = yb.Slice(16, 128);
            for (int j = 0, o = 0; j < Block; j += 64, o += 32)
                for (int l = 0; l < 32; l++)
                    qs[o + l] = (byte)(levels[j + l] | (levels[j + l + 32] << 4));
        }
    }

    /// <summary>Unpacks group <paramref name="j"/>'s 6-bit scale and min (get_scale_min_k4).</summary>
    static void ScaleMin(int j, ReadOnlySpan<byte> q, out byte scale, out byte min)
    {
        if (j < 4)
        {
            scale = (byte)(q[j] & 63);
            min = (byte)(q[j + 4] & 63);
        }
        else
        {
            scale = (byte)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            min = (byte)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dequantize(ReadOnlySpan<byte> y, Span<float> x)
    {
        for (int b = 0; b < x.Length / Block; b++)
        {
            var yb = y.Slice(b * Bytes, Bytes);
            var xb = x.Slice(b * Block, Block);
            float d = FromHalfBits(ReadU16(yb, 0));
            float min = FromHalfBits(ReadU16(yb, 2));
            var packed = yb.Slice(4, 12);
            var qs = yb.Slice(16, 128);
            int outIndex = 0, q = 0;
            for (int j = 0, group = 0; j < Block; j += 64, group += 2, q += 32)
            {
                ScaleMin(group, packed, out byte sc1, out byte m1);
                ScaleMin(group + 1, packed, out byte sc2, out byte m2);
                float d1 = d * sc1, mm1 = min * m1, d2 = d * sc2, mm2 = min * m2;
                for (int l = 0; l < 32; l++) xb[outIndex++] = d1 * (qs[q + l] & 0xF) - mm1;
                for (int l = 0; l < 32; l++) xb[outIndex++] = d2 * (qs[q + l] >> 4) - mm2;
            }
        }
    }
}
