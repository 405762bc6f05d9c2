using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Engine.Kernels;

/// <summary>
/// Autograd function for the fused per-token log-prob over materialised logits [N, V] (f32 or bf16).
/// Outputs: log p(label) fp32 [N] (differentiable) and the mean logit fp32 [N] (not differentiable).
/// Saves only the logits (already alive), the labels and two floats per row; the backward recomputes the softmax
/// from them and writes the logits' gradient, into the logits' own storage when the caller allows it
/// (<c>inPlace</c>: the logits are used by nothing else, and the graph is not retained for a second backward).
/// In place, the [N, V] buffer lives no longer than the head's backward: the saved logits (the caller's tensor itself,
/// which the graph would keep until the step's scope ends) give up their storage to the gradient, and the gradient's
/// handle goes to <see cref="LogProbGradientRelease"/>, which drops it once autograd has consumed the gradient.
/// </summary>
internal sealed class FusedLogProbFunction : MultiTensorFunction<FusedLogProbFunction>
{
    public override string Name => "FusedTokenLogProb";

    /// <summary>logits [N, V] contiguous, labels [N] int64 contiguous on the same device.</summary>
    public static (Tensor LogProbs, Tensor LogitMeans) Apply(Tensor logits, Tensor labels, bool inPlace)
    {
        var outputs = apply(logits, labels, inPlace);
        return (outputs[0], outputs[1]);
    }

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var logits = (Tensor)vars[0];
        var labels = (Tensor)vars[1];
        var (logp, stats, means) = LogProbKernels.Forward(logits, labels);
        ctx.save_for_backward(new List<Tensor> { logits, labels, stats });
        ctx.save_data("inPlace", (bool)vars[2]);
        // TorchSharp materialises missing output gradients from tensors it registers in the caller's dispose
        // scope, which may be gone by backward time; the means never carry a gradient, so nothing is materialised.
        ctx.set_materialize_grads(false);
        ctx.mark_non_differentiable(new List<Tensor> { means });
        return new List<Tensor> { logp, means };
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grad_outputs)
    {
        if (grad_outputs[0].IsInvalid) return new List<Tensor> { null!, null!, null! }; // log-probs unused: no gradient
        var saved = ctx.get_saved_variables();
        try
        {
            Tensor logits = saved[0], labels = saved[1], stats = saved[2];
            using var g = grad_outputs[0].to(ScalarType.Float32).contiguous();
            if (!(bool)ctx.get_data("inPlace"))
            {
                var buffer = LogProbKernels.NewGradientBuffer(logits);
                LogProbKernels.Backward(logits, labels, stats, g, buffer);
                return new List<Tensor> { buffer, null!, null! };
            }
            var grad = LogProbGradientRelease.Defer(logits.detach());
            LogProbKernels.Backward(logits, labels, stats, g, grad);
            // The unpacked saved logits are the saved tensor itself: emptying it leaves the storage to the gradient alone.
            logits.set_(empty(0, logits.dtype, logits.device));
            return new List<Tensor> { grad, null!, null! };
        }
        finally
        {
            foreach (var t in saved) t.Dispose();
        }
    }
}
