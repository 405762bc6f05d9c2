using static TorchSharp.torch;

namespace Engine.Tests.Kernels;

/// <summary>Element-wise closeness of two tensors (|a − e| ≤ atol + rtol·|e|, infinities equal, no NaN unless both).</summary>
internal static class TensorAssert
{
    public static void Close(Tensor actual, Tensor expected, double atol, double rtol, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var a = actual.detach().to(ScalarType.Float64).cpu().contiguous();
        using var e = expected.detach().to(ScalarType.Float64).cpu().contiguous();
        var av = a.data<double>().ToArray();
        var ev = e.data<double>().ToArray();
        int bad = 0;
        string first = "";
        double worst = 0;
        for (int i = 0; i < av.Length; i++)
        {
            bool ok = double.IsNaN(ev[i]) ? double.IsNaN(av[i])
                : double.IsInfinity(ev[i]) ? av[i] == ev[i]
                : Math.Abs(av[i] - ev[i]) <= atol + rtol * Math.Abs(ev[i]);
            if (!ok)
            {
                if (bad++ == 0) first = $"index {i}: got {av[i]:G9}, expected {ev[i]:G9}";
            }
            else if (double.IsFinite(ev[i])) worst = Math.Max(worst, Math.Abs(av[i] - ev[i]));
        }
        Assert.True(bad == 0, $"{what}: {bad} of {av.Length} elements differ beyond atol {atol}, rtol {rtol}; first at {first}");
    }

    public static void BitEqual(Tensor a, Tensor b, string what)
    {
        using var x = a.detach().cpu().contiguous();
        using var y = b.detach().cpu().contiguous();
        Assert.True(x.bytes.SequenceEqual(y.bytes), $"{what}: not bit-identical");
    }
}
