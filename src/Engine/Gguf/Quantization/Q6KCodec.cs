using System.Runtime.CompilerServices;
using static Engine.Gguf.Quantization.QuantMath;

namespace Engine.Gguf.Quantization;

/// <summary>
/// Q6_K: super-blocks of 256 = 16 groups of 16 with int8 scales under one fp16 d; 6-bit levels split into
/// low nibbles (ql, 128 bytes) and high 2-bit pairs (qh, 64 bytes); then 16 scales and d (210 bytes).
/// The quantizer is ggml's reference one (quantize_row_q6_K_ref).
/// </summary>
internal static class Q6KCodec
{
    public const int Block = 256, Bytes = 210;
    const int Groups = Block / 16;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        Span<sbyte> levels = stackalloc sbyte[Block];
        Span<float> scales = stackalloc float[Groups];
        for (int b = 0; b < x.Length / Block; b++)
        {
            var xb = x.Slice(b * Block, Block);
            var yb = y.Slice(b * Bytes, Bytes);
            float maxScale = 0, maxAbsScale = 0;
            for (int g = 0; g < Groups; g++)
            {
                float scale = MakeQxQuants(xb.Slice(16 * g, 16), 32, levels.Slice(16 * g, 16));
                scales[g] = scale;
                float abs = MathF.Abs(scale);
                if (abs > maxAbsScale) { maxAbsScale = abs; maxScale = scale; }
            }
            if (maxAbsScale < GroupMaxEps)
            {
                yb.Clear();
                continue;
            }
            float iscale = -128f / maxScale;
            ushort dBits = ToHalfBits(1 / iscale);
            WriteU16(yb, 208, dBits);
            var sc = yb.Slice(192, 16);
            for (int g = 0; g < Groups; g++) sc[g] = (byte)(sbyte)Math.Min(127, NearestInt(iscale * scales[g]));
            float dAll = FromHalfBits(dBits);
            for (int g = 0; g < Groups; g++)
            {
                float d = dAll * (sbyte)sc[g];
                if (d == 0) continue;
                for (int i = 0; i < 16; i++)
                {
                    int l = NearestInt(xb[16 * g + i] / d);
                    levels[16 * g + i] = (sbyte)(Math.Max(-32, Math.Min(31, l)) + 32);
                }
            }
            var ql = yb.Slice(0, 128);
            var qh = yb.Slice(128, 64);
            for (int j = 0, lo = 0, hi = 0; j < Block; j += 128, lo += 64, hi += 32)
            {
                for (int l = 0; l < 32; l++)
                {
                    int l0 = levels[j + l], l1 = levels[j + l + 32], l2 = levels[j + l + 64], l3 = levels[j + l + 96];
                    ql[lo + l] = (byte)((l0 & 0xF) | ((l2 & 0xF) << 4));
                    ql[lo + l + 32] = (byte)((l1 & 0xF) | ((l3 & 0xF) << 4));
                    qh[hi + l] = (byte)((l0 >> 4) | ((l1 >> 4) << 2) | ((l2 >> 4) << 4) | ((l3 >> 4) << 6));
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dequantize(ReadOnlySpan<byte> y, Span<float> x)
    {
        for (int b = 0; b < x.Length / Block; b++)
        {
            var yb = y.Slice(b * Bytes, Bytes);
            var xb = x.Slice(b * Block, Block);
            float d = FromHalfBits(ReadU16(yb, 208));
            for (int n = 0, lo = 0, hi = 0, s = 192; n < Block; n += 128, lo += 64, hi += 32, s += 8)
            {
                for (int l = 0; l < 32; l++)
                {
                    int g = l / 16;
                    byte h = yb[128 + hi + l];
                    int q1 = ((yb[lo + l] & 0xF) | ((h & 3) << 4)) - 32;
                    int q2 = ((yb[lo + l + 32] & 0xF) | (((h >> 2) & 3) << 4)) - 32;
                    int q3 = ((yb[lo + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
                    int q4 = ((yb[lo + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
                    xb[n + l] = d * (sbyte)yb[s + g] * q1;
                    xb[n + l + 32] = d * (sbyte)yb[s + g + 2] * q2;
                    xb[n + l + 64] = d * (sbyte)yb[s + g + 4] * q3;
                    xb[n + l + 96] = d * (sbyte)yb[s + g + 6] * q4;
                }
            }
        }
    }
}
