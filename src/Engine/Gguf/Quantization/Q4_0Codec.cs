using System.Runtime.CompilerServices;
using static Engine.Gguf.Quantization.QuantMath;

namespace Engine.Gguf.Quantization;

/// <summary>
/// Q4_0: blocks of 32 as an fp16 scale d = (signed value of largest magnitude)/-8 and 32 nibbles
/// q = min(15, trunc(x/d + 8.5)); element j in the low nibble of byte j, element j+16 in its high nibble (18 bytes).
/// </summary>
internal static class Q4_0Codec
{
    public const int Block = 32, Bytes = 18;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / Block; b++)
        {
            var xs = x.Slice(b * Block, Block);
            var ys = y.Slice(b * Bytes, Bytes);
            float d = SignedAbsMax(xs) / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            WriteU16(ys, 0, ToHalfBits(d));
            for (int j = 0; j < Block / 2; j++)
            {
                int q0 = Math.Min(15, (int)(sbyte)(xs[j] * id + 8.5f));
                int q1 = Math.Min(15, (int)(sbyte)(xs[Block / 2 + j] * id + 8.5f));
                ys[2 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dequantize(ReadOnlySpan<byte> y, Span<float> x)
    {
        for (int b = 0; b < x.Length / Block; b++)
        {
            var ys = y.Slice(b * Bytes, Bytes);
            float d = FromHalfBits(ReadU16(ys, 0));
            var xs = x.Slice(b * Block, Block);
            for (int j = 0; j < Block / 2; j++)
            {
                xs[j] = ((ys[2 + j] & 0x0F) - 8) * d;
                xs[j + Block / 2] = ((ys[2 + j] >> 4) - 8) * d;
            }
        }
    }
}
