using Engine.Kernels.Autograd;
using static TorchSharp.torch;

namespace Engine.Kernels;

/// <summary>
/// Fused RoPE on one of queries or keys [B, T, heads, headDim], in place (a fresh projection output that nothing
/// else reads: a linear's backward needs its input, not its output). Saves only the fp32 cos/sin tables
/// ([B·T, headDim/2]); the backward applies the inverse rotation to the gradient, read in whatever layout it comes in,
/// into a new tensor. One tensor per call: autograd allows an in-place function on a view to return only one output.
/// </summary>
internal sealed class RopeFunction : KernelNode
{
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin) =>
        new RopeFunction().Forward(new[] { x, cos, sin }, () =>
        {
            LayerKernels.Rope(x, cos, sin, inverse: false);
            return (x, new[] { cos, sin });
        }, outputIsDirtyInput: true);

    protected override Tensor?[] Backward(Tensor gradOutput)
    {
        // The gradient usually arrives as a transposed view of attention's [B, heads, T, headDim] gradient (and a
        // contiguous one may be autograd's own buffer, never to be written): rotate it straight into a fresh
        // contiguous tensor, one read and one write, instead of a copy and then a rotation in place.
        var grad = gradOutput.stride(3) == 1 ? gradOutput : gradOutput.contiguous();
        var rotated = empty(grad.shape, grad.dtype, device: grad.device);
        LayerKernels.RopeInto(grad, rotated, Saved(0), Saved(1), inverse: true);
        return new[] { rotated, null, null };
    }
}
