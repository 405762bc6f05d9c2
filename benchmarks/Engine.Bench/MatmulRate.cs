using System.Diagnostics;
using static TorchSharp.torch;

namespace Engine.Bench;

/// <summary>Measures this machine's dense matmul rate, the yardstick for every throughput figure.</summary>
public static class MatmulRate
{
    /// <summary>FLOP/s of an [m,k]×[k,n] matmul in <paramref name="dtype"/>, best of several timed repeats.</summary>
    public static double Measure(ScalarType dtype, int m = 1024, int k = 1024, int n = 1024, double seconds = 1.0)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var a = randn(m, k).to(dtype);
        var b = randn(k, n).to(dtype);
        mm(a, b).Dispose(); // warm-up
        double best = double.MaxValue;
        var total = Stopwatch.StartNew();
        int reps = 0;
        while (total.Elapsed.TotalSeconds < seconds || reps < 3)
        {
            var sw = Stopwatch.StartNew();
            mm(a, b).Dispose();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
            reps++;
        }
        return 2.0 * m * k * n / best;
    }
}
