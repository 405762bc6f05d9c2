using System.Runtime.CompilerServices;
using static Engine.Gguf.Quantization.QuantMath;

namespace Engine.Gguf.Quantization;

/// <summary>
/// Q5_0: blocks of 32 as an fp16 scale d = (signed value of largest magnitude)/-16, 32 fifth bits (qh) and
/// 32 low nibbles (22 bytes). llama.cpp's quantizer falls back to it for Q4_K tensors whose rows are not
/// a multiple of 256.
/// </summary>
internal static class Q5_0Codec
{
    public const int Block = 32, Bytes = 22;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / Block; b++)
        {
            var xs = x.Slice(b * Block, Block);
            var ys = y.Slice(b * Bytes, Bytes);
            float d = SignedAbsMax(xs) / -16;
            float id = d != 0 ? 1.0f / d : 0.0f;
            WriteU16(ys, 0, ToHalfBits(d));
            uint qh = 0;
            for (int j = 0; j < Block / 2; j++)
            {
                int q0 = Math.Min(31, (int)(sbyte)(xs[j] * id + 16.5f));
                int q1 = Math.Min(31, (int)(sbyte)(xs[Block / 2 + j] * id + 16.5f));
                ys[6 + j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                qh |= (uint)((q0 & 0x10) >> 4) << j;
                qh |= (uint)((q1 & 0x10) >> 4) << (j + Block / 2);
            }
            ys[2] = (byte)qh; ys[3] = (byte)(qh >> 8); ys[4] = (byte)(qh >> 16); ys[5] = (byte)(qh >> 24);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dequantize(ReadOnlySpan<byte> y, Span<float> x)
    {
        for (int b = 0; b < x.Length / Block; b++)
        {
            var ys = y.Slice(b * Bytes, Bytes);
            float d = FromHalfBits(ReadU16(ys, 0));
            uint qh = (uint)(ys[2] | (ys[3] << 8) | (ys[4] << 16) | (ys[5] << 24));
            var xs = x.Slice(b * Block, Block);
            for (int j = 0; j < Block / 2; j++)
            {
                int high0 = (int)((qh >> j) << 4) & 0x10;
                int high1 = (int)(qh >> (j + 12)) & 0x10;
                xs[j] = (((ys[6 + j] & 0x0F) | high0) - 16) * d;
                xs[j + Block / 2] = (((ys[6 + j] >> 4) | high1) - 16) * d;
            }
        }
    }
}
