using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Engine.Kernels;

/// <summary>
/// Fused RMSNorm over the last dimension (f32 or bf16, CPU). Saves the input (alive anyway: the residual stream),
/// the weight and one fp32 inverse RMS per row; the composite saves an fp32 copy of x, the normalised x and more.
/// Arguments: x, weight, eps (double), unitOffset (bool: Gemma's (1 + w)).
/// </summary>
internal sealed class RmsNormFunction : SingleTensorFunction<RmsNormFunction>
{
    public override string Name => "FusedRmsNorm";

    const int ModeWeight = 0, ModeUnitOffset = 1;

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var x = ((Tensor)vars[0]).contiguous();
        var weight = ((Tensor)vars[1]).contiguous();
        double eps = (double)vars[2];
        int mode = (bool)vars[3] ? ModeUnitOffset : ModeWeight;
        long n = x.shape[^1], rows = x.numel() / n;
        var y = empty_like(x);
        var inv = empty(new[] { rows }, ScalarType.Float32, x.device);
        LayerKernels.RmsNormForward(x, weight, (float)eps, mode, y, inv);
        ctx.save_for_backward(new List<Tensor> { x, weight, inv });
        ctx.save_data("mode", mode);
        return y;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        try
        {
            Tensor x = saved[0], weight = saved[1], inv = saved[2];
            int mode = (int)ctx.get_data("mode");
            long n = x.shape[^1];
            using var dy = gradOutput.to(x.dtype).contiguous();
            var dx = empty_like(x);
            using var dw32 = empty(new[] { n }, ScalarType.Float32, x.device);
            LayerKernels.RmsNormBackward(x, weight, inv, dy, mode, dx, dw32);
            var dw = dw32.to(weight.dtype);
            return ReturnedGradients.Hand(dx, dw, null, null);
        }
        finally
        {
            foreach (var t in saved) t.Dispose();
        }
    }
}
