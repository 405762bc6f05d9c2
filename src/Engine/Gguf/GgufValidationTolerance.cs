using Engine.Models;

namespace Engine.Gguf;

/// <summary>What llama.cpp's CPU matrix product rounds the activations to before multiplying by a weight of a given
/// type (ggml's "vec_dot" type of the weight type).</summary>
public enum ActivationRounding { None, F16, BF16, Q8_0, Q8_K }

/// <summary>
/// How far llama.cpp's logits may be from Engine's forward of the weights as stored (<see cref="GgufStoredWeights"/>).
/// Both sides multiply the same weights, so what is left is llama.cpp's own arithmetic: before multiplying by a weight of
/// type T its CPU matrix product rounds the activations to T's vec_dot type (<see cref="ActivationRounding"/>). The
/// error is measured relative to the spread of the logits, max |Δlogit| / σ(logits) per position. How much a rounding
/// of relative size ε moves the logits depends on the model (its depth and conditioning), so the limit is calibrated
/// on the model itself: Engine's forward in BF16 (every weight and activation rounded to BF16) against its F32
/// forward gives the model's sensitivity s to rounding at BF16's ε; the limit for rounding of size ε_T is then
/// <see cref="Margin"/> · s · ε_T / ε_BF16 (never below <see cref="F32Limit"/>). llama.cpp rounds far less than
/// Engine's BF16 forward does (only the inputs of matrix products), so on the models measured in docs/gguf-export.md
/// its error was 0.17–0.59 of that prediction: the margin leaves at least 2.5 times room.
/// </summary>
/// <param name="MaxRelativeError">the limit on max |Δlogit| / σ(logits) at any position</param>
/// <param name="Rounding">the coarsest activation rounding llama.cpp applies for the tensor types in the file</param>
/// <param name="Sensitivity">the model's max |Δlogit| / σ between Engine's BF16 and F32 forwards (0 for F32 files)</param>
public sealed record FaithfulnessTolerance(double MaxRelativeError, ActivationRounding Rounding, double Sensitivity)
{
    /// <summary>F32 files: llama.cpp computes in F32 too; measured differences stay below 1e-5 (summation order, its
    /// vectorised exp and SiLU).</summary>
    public const double F32Limit = 1e-4;

    public const double Margin = 1.5;

    /// <summary>
    /// The root-mean-square relative error of rounding a standard normal vector to the format: F16 and BF16 round
    /// to nearest even with 11 and 8 significant bits; Q8_0 and Q8_K round to 127 levels of the block's absolute
    /// maximum, in blocks of 32 (scale stored as F16) and 256 (scale F32). (Checked against the codecs by a test.)
    /// </summary>
    public static double Epsilon(ActivationRounding r) => r switch
    {
        ActivationRounding.None => 0,
        ActivationRounding.F16 => 2.09e-4,
        ActivationRounding.BF16 => 1.66e-3,
        ActivationRounding.Q8_0 => 5.33e-3,
        _ => 6.91e-3,
    };

    /// <summary>ggml's vec_dot type of each weight type Engine writes.</summary>
    public static ActivationRounding For(GgmlType weightType) => weightType switch
    {
        GgmlType.F32 => ActivationRounding.None,
        GgmlType.F16 => ActivationRounding.F16,
        GgmlType.BF16 => ActivationRounding.BF16,
        GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q5_0 => ActivationRounding.Q8_0,
        _ => ActivationRounding.Q8_K,
    };

    /// <summary>
    /// What llama.cpp rounds inside the MLP whatever the file type: ggml's CPU GELU reads a table indexed by the f16
    /// rounding of its input and returns an f16 value (GGML_GELU_FP16 in ggml-cpu/vec.h), so a GeGLU model (Gemma 3)
    /// is computed with F16-rounded activations even from an F32 file. SwiGLU's SiLU is computed in F32.
    /// </summary>
    public static ActivationRounding For(MlpActivation activation) =>
        activation == MlpActivation.GeluTanh ? ActivationRounding.F16 : ActivationRounding.None;

    public static FaithfulnessTolerance For(ActivationRounding rounding, double sensitivity) =>
        new(Math.Max(F32Limit, Margin * sensitivity * Epsilon(rounding) / Epsilon(ActivationRounding.BF16)), rounding, sensitivity);

    public override string ToString() => Rounding == ActivationRounding.None
        ? $"max |Δlogit|/σ ≤ {MaxRelativeError:G2} (F32 arithmetic on both sides)"
        : $"max |Δlogit|/σ ≤ {MaxRelativeError:G2} = {Margin} × model sensitivity {Sensitivity:G3} × ε({Rounding}) / ε(BF16) (llama.cpp rounds activations to {Rounding})";
}

/// <summary>
/// The loose limits on the quality of the quantization, against Engine's forward of the source: only gross damage
/// fails (the numbers themselves are reported; what is acceptable is the user's call).
/// </summary>
public sealed record QualityLimits(double MaxKlMean, double MaxPerplexityRatio)
{
    public static readonly QualityLimits GrossDamage = new(1.0, 2.0);

    public override string ToString() => $"KL mean ≤ {MaxKlMean:G2}, perplexity ratio ≤ {MaxPerplexityRatio:G2}";
}

/// <summary>Per-position comparisons of two logit vectors over the vocabulary, in double precision.</summary>
public static class LogitStatistics
{
    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) return double.PositiveInfinity;
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d)) return double.PositiveInfinity;
            if (d > m) m = d;
        }
        return m;
    }

    /// <summary>The standard deviation of the logits over the vocabulary (a constant shift does not change it).</summary>
    public static double Spread(ReadOnlySpan<float> z)
    {
        double mean = 0;
        foreach (var v in z) mean += v;
        mean /= Math.Max(1, z.Length);
        double ss = 0;
        foreach (var v in z) ss += (v - mean) * (v - mean);
        return Math.Sqrt(ss / Math.Max(1, z.Length));
    }

    public static double[] LogSoftmax(ReadOnlySpan<float> z)
    {
        double max = double.NegativeInfinity;
        foreach (var v in z) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in z) sum += Math.Exp(v - max);
        double logZ = max + Math.Log(sum);
        var result = new double[z.Length];
        for (int i = 0; i < z.Length; i++) result[i] = z[i] - logZ;
        return result;
    }

    /// <summary>KL(P‖Q) in nats from log-probabilities.</summary>
    public static double KlDivergence(double[] logP, double[] logQ)
    {
        double kl = 0;
        for (int i = 0; i < logP.Length; i++)
        {
            double p = Math.Exp(logP[i]);
            if (p > 0) kl += p * (logP[i] - logQ[i]);
        }
        return Math.Max(0, kl);
    }

    /// <summary>The q-quantile (0..1) with linear interpolation between order statistics.</summary>
    public static double Percentile(IEnumerable<double> values, double q)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        if (sorted.Length == 0) return double.NaN;
        double position = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(position), hi = Math.Min(sorted.Length - 1, lo + 1);
        return sorted[lo] + (position - lo) * (sorted[hi] - sorted[lo]);
    }

    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }
}
