using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Tests.Objectives;

/// <summary>Plain-double formulas for the expected values (independent of the code under test), and tensor
/// builders for the inputs.</summary>
internal static class Hand
{
    public static double Sigmoid(double x) => 1.0 / (1.0 + Math.Exp(-x));
    public static double LogSigmoid(double x) => x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));
    public static double Mean(IEnumerable<double> xs) => xs.Average();

    /// <summary>Scores with LogpSum a leaf that requires grad, so tests can read d loss / d logp.</summary>
    public static SequenceScores Scores(double[] logpSums, double[] tokenCounts, double[]? logitSums = null)
    {
        var logp = tensor(logpSums.Select(v => (float)v).ToArray()).requires_grad_(true);
        var counts = tensor(tokenCounts.Select(v => (float)v).ToArray());
        var logits = tensor((logitSums ?? new double[logpSums.Length]).Select(v => (float)v).ToArray());
        return new SequenceScores(logp, counts, logits);
    }

    public static Tensor Vec(params double[] values) => tensor(values.Select(v => (float)v).ToArray());

    public static double Scalar(Tensor t) => t.to(ScalarType.Float64).item<double>();

    public static double[] Grad(SequenceScores s) => s.LogpSum.grad!.to(ScalarType.Float64).data<double>().ToArray();

    /// <summary>fp32 inputs: compare with a relative tolerance.</summary>
    public static void Close(double expected, double actual, double rel = 2e-5, string? what = null)
    {
        double tol = rel * Math.Max(1.0, Math.Abs(expected));
        Assert.True(Math.Abs(expected - actual) <= tol,
            $"{what ?? "value"}: expected {expected:R}, got {actual:R} (tolerance {tol:G3})");
    }

    public static void Close(double[] expected, double[] actual, double rel = 2e-5, string? what = null)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Close(expected[i], actual[i], rel, $"{what ?? "value"}[{i}]");
    }
}
