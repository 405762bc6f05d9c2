using System.Runtime.CompilerServices;
using static Engine.Gguf.Quantization.QuantMath;

namespace Engine.Gguf.Quantization;

/// <summary>Q8_0: blocks of 32 as an fp16 scale d = max|x|/127 and 32 int8 values round(x/d) (34 bytes).</summary>
internal static class Q8_0Codec
{
    public const int Block = 32, Bytes = 34;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        for (int b = 0; b < x.Length / Block; b++)
        {
            var xs = x.Slice(b * Block, Block);
            var ys = y.Slice(b * Bytes, Bytes);
            float amax = 0;
            for (int j = 0; j < Block; j++) amax = Math.Max(amax, MathF.Abs(xs[j]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            WriteU16(ys, 0, ToHalfBits(d));
            for (int j = 0; j < Block; j++)
                ys[2 + j] = (byte)(sbyte)MathF.Round(xs[j] * id, MidpointRounding.AwayFromZero);
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
            for (int j = 0; j < Block; j++) xs[j] = (sbyte)ys[2 + j] * d;
        }
    }
}
