using Engine.Kernels.Autograd;
using static TorchSharp.torch;

namespace Engine.Kernels;

/// <summary>
/// Fused act(gate) · up (SwiGLU, GeGLU), f32 or bf16, CPU or CUDA. Saves gate and up only (the composite also keeps
/// act(gate)); the backward recomputes the activation.
/// </summary>
internal sealed class GatedActivationFunction : KernelNode
{
    readonly int _activation;

    GatedActivationFunction(GatedActivation activation) => _activation = (int)activation;

    public static Tensor Apply(Tensor gate, Tensor up, GatedActivation activation)
    {
        var node = new GatedActivationFunction(activation);
        return node.Forward(new[] { gate, up }, () =>
        {
            var g = Contiguous(gate);
            var u = Contiguous(up);
            var h = empty_like(g);
            LayerKernels.GluForward(node._activation, g, u, h);
            return (h, new[] { g, u });
        });
    }

    protected override Tensor?[] Backward(Tensor gradOutput)
    {
        Tensor gate = Saved(0), up = Saved(1);
        var dh = Incoming(gradOutput, gate.dtype);
        var dGate = empty_like(gate);
        var dUp = empty_like(up);
        LayerKernels.GluBackward(_activation, gate, up, dh, dGate, dUp);
        return new[] { dGate, dUp };
    }
}
