using Engine.Kernels.Autograd;
using static TorchSharp.torch;

namespace Engine.Kernels;

/// <summary>
/// Fused RMSNorm over the last dimension (f32 or bf16, CPU or CUDA). Saves the input (alive anyway: the residual
/// stream), the weight and one fp32 inverse RMS per row; the composite saves an fp32 copy of x, the normalised x and more.
/// </summary>
internal sealed class RmsNormFunction : KernelNode
{
    const int ModeWeight = 0, ModeUnitOffset = 1;

    readonly int _mode;

    RmsNormFunction(int mode) => _mode = mode;

    /// <summary>w · x̂, or with <paramref name="unitOffset"/> Gemma's (1 + w) · x̂.</summary>
    public static Tensor Apply(Tensor x, Tensor weight, double eps, bool unitOffset)
    {
        var node = new RmsNormFunction(unitOffset ? ModeUnitOffset : ModeWeight);
        return node.Forward(new[] { x, weight }, () =>
        {
            var xc = Contiguous(x);
            var wc = Contiguous(weight);
            long n = xc.shape[^1], rows = xc.numel() / Math.Max(1, n);
            var y = empty_like(xc);
            var inv = empty(new[] { rows }, ScalarType.Float32, xc.device);
            LayerKernels.RmsNormForward(xc, wc, (float)eps, node._mode, y, inv);
            return (y, new[] { xc, wc, inv });
        });
    }

    protected override Tensor?[] Backward(Tensor gradOutput)
    {
        Tensor x = Saved(0), weight = Saved(1), inv = Saved(2);
        var dy = Incoming(gradOutput, x.dtype);
        var dx = empty_like(x);
        var dw = LayerKernels.RmsNormBackward(x, weight, inv, dy, _mode, dx);
        return new[] { dx, dw };
    }
}
