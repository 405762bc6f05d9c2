using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Engine.Kernels;

/// <summary>
/// Fused act(gate) · up (SwiGLU, GeGLU), f32 or bf16 on the CPU. Saves gate and up only (the composite also keeps
/// act(gate)); the backward recomputes the activation. Arguments: gate, up, <see cref="GatedActivation"/>.
/// </summary>
internal sealed class GatedActivationFunction : SingleTensorFunction<GatedActivationFunction>
{
    public override string Name => "FusedGatedActivation";

    public override Tensor forward(AutogradContext ctx, params object[] vars)
    {
        var gate = ((Tensor)vars[0]).contiguous();
        var up = ((Tensor)vars[1]).contiguous();
        int activation = (int)(GatedActivation)vars[2];
        var h = empty_like(gate);
        LayerKernels.GluForward(activation, gate, up, h);
        ctx.save_for_backward(new List<Tensor> { gate, up });
        ctx.save_data("activation", activation);
        return h;
    }

    public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        try
        {
            Tensor gate = saved[0], up = saved[1];
            using var dh = gradOutput.to(gate.dtype).contiguous();
            var dGate = empty_like(gate);
            var dUp = empty_like(up);
            LayerKernels.GluBackward((int)ctx.get_data("activation"), gate, up, dh, dGate, dUp);
            return ReturnedGradients.Hand(dGate, dUp, null);
        }
        finally
        {
            foreach (var t in saved) t.Dispose();
        }
    }
}
