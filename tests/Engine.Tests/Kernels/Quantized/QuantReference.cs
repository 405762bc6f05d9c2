using static TorchSharp.torch;

namespace Engine.Tests.Kernels.Quantized;

/// <summary>
/// A plain, one-value-at-a-time reference of the quantized formats, written from their definitions (QLoRA's NF4
/// code book, bitsandbytes' block layout and double quantization), independent of native/src/quant.cpp:
/// nearest code by exhaustive search in double, sums in double, the dynamic code built with torch's own ops as
/// bitsandbytes' Python builds it.
/// </summary>
internal static class QuantReference
{
    /// <summary>QLoRA / bitsandbytes NF4 values (as printed in bitsandbytes' kernels).</summary>
    public static readonly float[] Nf4 =
    {
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    };

    /// <summary>
    /// create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) with torch ops: per exponent i, the means
    /// of neighbouring points of linspace(0.1, 1, 2^i + 1) in float32, times ±10^(i-6); then 0 and 1; sorted.
    /// </summary>
    public static float[] DynamicCode()
    {
        using var scope = NewDisposeScope();
        var data = new List<float>();
        for (int i = 0; i < 7; i++)
        {
            long n = (1 << i) + 1;
            var bounds = linspace(0.1, 1, n, dtype: ScalarType.Float32);
            var means = (bounds.slice(0, 0, n - 1, 1) + bounds.slice(0, 1, n, 1)) / 2.0;
            double scale = Math.Pow(10, -6 + i);
            data.AddRange((means * scale).data<float>().ToArray());
            data.AddRange((means * -scale).data<float>().ToArray());
        }
        data.Add(0f);
        data.Add(1f);
        return data.OrderBy(v => v).ToArray();
    }

    /// <summary>Index of the value of <paramref name="code"/> nearest to x (ties and NaN: the lower index).</summary>
    public static int Nearest(IReadOnlyList<float> code, float x)
    {
        if (float.IsNaN(x)) return 0;
        int best = 0;
        for (int i = 1; i < code.Count; i++)
            if (Math.Abs((double)x - code[i]) < Math.Abs((double)x - code[best])) best = i;
        return best;
    }

    public sealed record Nf4Result(byte[] Data, float[] Absmax);
    public sealed record DoubleQuantResult(byte[] Data, byte[] QAbsmax, float[] Absmax2, float Offset);
    public sealed record Int8Result(sbyte[] Data, float[] Scale);

    static float BlockAbsmax(float[] w, int first)
    {
        float m = 0;
        for (int i = first; i < Math.Min(w.Length, first + 64); i++) m = Math.Max(m, Math.Abs(w[i]));
        return m;
    }

    /// <summary>NF4: per block of 64, x · (1/absmax) (bitsandbytes multiplies by the reciprocal) to the nearest code;
    /// value 2i in the high nibble of byte i.</summary>
    public static Nf4Result QuantizeNf4(float[] w)
    {
        int blocks = (w.Length + 63) / 64;
        var absmax = new float[blocks];
        var codes = new int[w.Length + 1];
        for (int b = 0; b < blocks; b++)
        {
            absmax[b] = BlockAbsmax(w, 64 * b);
            float inv = 1f / absmax[b];
            for (int i = 64 * b; i < Math.Min(w.Length + 1, 64 * b + 64); i++) codes[i] = Nearest(Nf4, (i < w.Length ? w[i] : 0f) * inv);
        }
        var data = new byte[(w.Length + 1) / 2];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(codes[2 * i] << 4 | codes[2 * i + 1]);
        return new Nf4Result(data, absmax);
    }

    /// <summary>NF4 codes as above; the absmax minus its mean, per group of 256, scaled by 1/max|·| to the nearest
    /// entry of the dynamic code.</summary>
    public static DoubleQuantResult QuantizeNf4DoubleQuant(float[] w)
    {
        var nf4 = QuantizeNf4(w);
        float[] absmax = nf4.Absmax;
        float offset = (float)(absmax.Sum(a => (double)a) / absmax.Length);
        float[] code = DynamicCode();
        int groups = (absmax.Length + 255) / 256;
        var qabsmax = new byte[absmax.Length];
        var absmax2 = new float[groups];
        for (int g = 0; g < groups; g++)
        {
            int first = 256 * g, last = Math.Min(absmax.Length, first + 256);
            float m = 0;
            for (int b = first; b < last; b++) m = Math.Max(m, Math.Abs(absmax[b] - offset));
            absmax2[g] = m;
            float inv = 1f / m;
            for (int b = first; b < last; b++) qabsmax[b] = (byte)Nearest(code, (absmax[b] - offset) * inv);
        }
        return new DoubleQuantResult(nf4.Data, qabsmax, absmax2, offset);
    }

    /// <summary>Int8: scale = absmax/127 per block; q = round-half-even(x / scale), 0 for an all-zero block.</summary>
    public static Int8Result QuantizeInt8(float[] w)
    {
        int blocks = (w.Length + 63) / 64;
        var scale = new float[blocks];
        var data = new sbyte[w.Length];
        for (int b = 0; b < blocks; b++)
        {
            scale[b] = BlockAbsmax(w, 64 * b) / 127f;
            for (int i = 64 * b; i < Math.Min(w.Length, 64 * b + 64); i++)
                data[i] = scale[b] == 0 ? (sbyte)0 : (sbyte)Math.Clamp(MathF.Round(w[i] / scale[b], MidpointRounding.ToEven), -127f, 127f);
        }
        return new Int8Result(data, scale);
    }
}
