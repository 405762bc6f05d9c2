using TorchSharp;
using static TorchSharp.torch;

namespace Engine.Util;

/// <summary>
/// Tensor sums that do not hand libtorch a temporary Scalar. TorchSharp 0.107's <c>a + b</c> is <c>a.add(b, 1)</c>: it
/// makes a Scalar for alpha = 1, passes only its native handle, and the Scalar's finalizer may free that handle while
/// the (long) native add still reads it: seen once in CI as libtorch's check in <c>Scalar::toBFloat16</c> inside a
/// bf16 residual sum. A Scalar that lives as long as the process is never finalized, so the hot sums use this one.
/// </summary>
public static class StableScalars
{
    static readonly Scalar One = 1;

    /// <summary><c>a + b</c> (with autograd), alpha held alive for the whole native call.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.add(b, One);

    /// <summary><c>a · s</c>; the Scalar is disposed after the call, so it cannot be finalized during it.</summary>
    public static Tensor Mul(Tensor a, double s)
    {
        using Scalar scalar = s;
        return a.mul(scalar);
    }

    /// <summary><c>a / s</c>.</summary>
    public static Tensor Div(Tensor a, double s)
    {
        using Scalar scalar = s;
        return a.div(scalar);
    }

    /// <summary><c>a · s</c> in place.</summary>
    public static Tensor MulInPlace(Tensor a, double s)
    {
        using Scalar scalar = s;
        return a.mul_(scalar);
    }
}
