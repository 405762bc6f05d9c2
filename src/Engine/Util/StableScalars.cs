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
}
