using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Engine.Kernels;

/// <summary>
/// Autograd function for lm_head + per-token log-prob, chunk by chunk over rows, so the [N, V] logits never exist
/// (Liger-Kernel's idea): at most one [chunkRows, V] logits block is alive at a time.
/// Forward: per chunk, logits = hidden_c · Wᵀ, then the fused forward kernel (log p, row stats, mean logit).
/// Backward: per chunk, the logits are recomputed, overwritten in place by the fused backward kernel with
/// g · (onehot − softmax), and turned into both gradients in the same pass: grad_hidden_c = G_c · W and
/// grad_W += G_cᵀ · hidden_c. (Liger computes the gradients inside the forward because its loss is the last op;
/// here the per-token log-probs feed arbitrary objectives, so the upstream gradient is only known in backward.)
/// </summary>
internal sealed class ChunkedLinearLogProbFunction : MultiTensorFunction<ChunkedLinearLogProbFunction>
{
    /// <summary>Byte budget of one chunk's logits (fp32-equivalent), which sets the default chunk rows.</summary>
    public const long DefaultChunkBytes = 64L << 20;

    public override string Name => "ChunkedLinearTokenLogProb";

    public static long DefaultChunkRows(long rows, long vocab) => Math.Clamp(DefaultChunkBytes / (vocab * sizeof(float)), 1, Math.Max(1, rows));

    /// <summary>hidden [N, H] and weight [V, H] (same dtype, f32 or bf16), labels [N] int64; all contiguous, one device.</summary>
    /// <param name="softcap">logits are cap·tanh(z / cap) of the linear ones (null: none); backward multiplies the
    /// kernel's gradient by the cap's derivative 1 − tanh² before the two matmuls</param>
    public static (Tensor LogProbs, Tensor LogitMeans) Apply(Tensor hidden, Tensor weight, Tensor labels, long chunkRows, double? softcap = null)
    {
        var outputs = apply(hidden, weight, labels, chunkRows, softcap ?? 0.0);
        return (outputs[0], outputs[1]);
    }

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var hidden = (Tensor)vars[0];
        var weight = (Tensor)vars[1];
        var labels = (Tensor)vars[2];
        long chunkRows = (long)vars[3];
        double softcap = (double)vars[4];
        long rows = hidden.shape[0];
        var logp = empty(new[] { rows }, ScalarType.Float32, hidden.device);
        var stats = empty(new[] { rows, 2L }, ScalarType.Float32, hidden.device);
        var means = empty(new[] { rows }, ScalarType.Float32, hidden.device);
        for (long start = 0; start < rows; start += chunkRows)
        {
            using var scope = NewDisposeScope();
            long n = Math.Min(chunkRows, rows - start);
            var logits = nn.functional.linear(hidden.narrow(0, start, n), weight);
            if (softcap != 0) logits = (logits / softcap).tanh_() * softcap;
            LogProbKernels.ForwardInto(logits, labels.narrow(0, start, n), logp.narrow(0, start, n), stats.narrow(0, start, n), means.narrow(0, start, n));
        }
        ctx.save_for_backward(new List<Tensor> { hidden, weight, labels, stats });
        ctx.save_data("chunkRows", chunkRows);
        ctx.save_data("softcap", softcap);
        ctx.save_data("hiddenGrad", hidden.requires_grad);
        ctx.save_data("weightGrad", weight.requires_grad);
        // TorchSharp materialises missing output gradients from tensors it registers in the caller's dispose
        // scope, which may be gone by backward time; the means never carry a gradient, so nothing is materialised.
        ctx.set_materialize_grads(false);
        ctx.mark_non_differentiable(new List<Tensor> { means });
        return new List<Tensor> { logp, means };
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grad_outputs)
    {
        if (grad_outputs[0].IsInvalid) return new List<Tensor> { null!, null!, null!, null!, null! }; // log-probs unused: no gradient
        var saved = ctx.get_saved_variables();
        try
        {
            Tensor hidden = saved[0], weight = saved[1], labels = saved[2], stats = saved[3];
            long chunkRows = (long)ctx.get_data("chunkRows");
            double softcap = (double)ctx.get_data("softcap");
            bool needHidden = (bool)ctx.get_data("hiddenGrad"), needWeight = (bool)ctx.get_data("weightGrad");
            long rows = hidden.shape[0];
            using var noGrad = no_grad();
            using var g = grad_outputs[0].to(ScalarType.Float32).contiguous();
            Tensor? gradHidden = needHidden ? empty_like(hidden) : null;
            // bf16 weights: accumulate the weight gradient over chunks in fp32, round once at the end.
            Tensor? gradWeight = needWeight ? zeros(weight.shape, ScalarType.Float32, weight.device) : null;
            for (long start = 0; start < rows; start += chunkRows)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(chunkRows, rows - start);
                var h = hidden.narrow(0, start, n);
                var logits = nn.functional.linear(h, weight);
                Tensor? capped = null;
                if (softcap != 0)
                {
                    capped = (logits / softcap).tanh_(); // tanh, kept for the derivative
                    logits = capped * softcap;
                }
                LogProbKernels.Backward(logits, labels.narrow(0, start, n), stats.narrow(0, start, n), g.narrow(0, start, n), logits);
                if (capped is not null) logits.mul_(1 - capped.square()); // d(cap·tanh(z/cap))/dz = 1 − tanh²
                gradHidden?.narrow(0, start, n).copy_(logits.mm(weight));
                if (gradWeight is not null)
                {
                    if (weight.dtype == ScalarType.Float32) gradWeight.addmm_(logits.t(), h);
                    else gradWeight.add_(logits.t().mm(h));
                }
            }
            if (gradWeight is not null && weight.dtype != ScalarType.Float32)
            {
                var rounded = gradWeight.to(weight.dtype);
                gradWeight.Dispose();
                gradWeight = rounded;
            }
            // Their handles would keep both gradients alive through the decoder backward: released once autograd has them.
            if (gradHidden is not null) LogProbGradientRelease.Defer(gradHidden);
            if (gradWeight is not null) LogProbGradientRelease.Defer(gradWeight);
            return new List<Tensor> { gradHidden!, gradWeight!, null!, null!, null! };
        }
        finally
        {
            foreach (var t in saved) t.Dispose();
        }
    }
}
