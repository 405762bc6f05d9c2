using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Engine.Kernels;

/// <summary>
/// Fused RoPE on one of queries or keys [B, T, heads, headDim], in place (a fresh projection output that nothing
/// else reads: a linear's backward needs its input, not its output). Saves only the fp32 cos/sin tables; the
/// backward applies the inverse rotation to the gradient, read in whatever layout it comes in, into a new tensor. Arguments: x, cos, sin ([B·T, headDim/2] fp32).
/// One tensor per call: autograd allows an in-place function on a view to return only one output.
/// </summary>
internal sealed class RopeFunction : SingleTensorFunction<RopeFunction>
{
    public override string Name => "FusedRope";

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        Tensor x = (Tensor)vars[0], cos = (Tensor)vars[1], sin = (Tensor)vars[2];
        Rotate(x, cos, sin, inverse: false);
        ctx.save_for_backward(new List<Tensor> { cos, sin });
        ctx.mark_dirty(new List<Tensor> { x });
        return x;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        try
        {
            // The gradient usually arrives as a transposed view of attention's [B, heads, T, headDim] gradient (and a
            // contiguous one may be autograd's own buffer, never to be written): rotate it straight into a fresh
            // contiguous tensor, one read and one write, instead of a copy and then a rotation in place.
            var grad = gradOutput.stride(3) == 1 ? gradOutput : gradOutput.contiguous();
            var rotated = empty(grad.shape, grad.dtype, device: grad.device);
            LayerKernels.RopeInto(grad, rotated, saved[0], saved[1], inverse: true);
            if (!ReferenceEquals(grad, gradOutput)) grad.Dispose();
            return ReturnedGradients.Hand(rotated, null, null);
        }
        finally
        {
            foreach (var t in saved) t.Dispose();
        }
    }

    static void Rotate(Tensor x, Tensor cos, Tensor sin, bool inverse) => LayerKernels.Rope(x, cos, sin, inverse);
}
