using static TorchSharp.torch;

namespace Engine.Objectives;

/// <summary>Reads small detached tensors into fp64 arrays: metrics are accumulated in fp64 on the host.</summary>
internal static class TensorValues
{
    public static double[] ToDoubles(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.detach().to(ScalarType.Float64).cpu().contiguous().data<double>().ToArray();
    }

    public static double Sum(double[] values)
    {
        double s = 0;
        foreach (var v in values) s += v;
        return s;
    }
}
