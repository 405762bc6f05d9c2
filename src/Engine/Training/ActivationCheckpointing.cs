using Engine.Kernels;
using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>
/// Per-layer activation checkpointing (TorchSharp has none): a decoder layer's forward runs without
/// autograd and keeps only its input; backward re-runs the layer with autograd on and back-propagates through
/// the recomputed graph. Activation memory drops from every layer's intermediates to one hidden state per
/// layer, for one extra layer forward per layer in backward.
/// </summary>
public static class ActivationCheckpointing
{
    /// <param name="replayRandomness">the layers draw random numbers (LoRA dropout): the forward and its recompute are seeded alike</param>
    public static void Enable(LlamaForCausalLM model, bool replayRandomness = false) =>
        model.LayerRunner = (layer, x, rope, mask, cache) => Run(layer, x, rope, mask, cache, replayRandomness);

    public static void Disable(LlamaForCausalLM model) => model.LayerRunner = null;

    static Tensor Run(DecoderLayer layer, Tensor x, RotaryTables rope, Tensor? mask, KvCache? cache, bool replayRandomness)
    {
        // Nothing to save when no gradient is wanted (eval, reference pre-pass) or when decoding with a cache.
        if (!is_grad_enabled() || cache != null) return layer.Forward(x, rope, mask, cache);
        // Backward runs after the forward's scope has released rope and mask: keep handles of our own.
        var keptRope = rope.Retain();
        var keptMask = mask?.alias().DetachFromDisposeScope();
        // The recompute must draw the same random numbers (LoRA dropout) as the forward did: both start from one fresh seed.
        long? seed = replayRandomness ? randint(long.MaxValue, new long[] { 1 }, dtype: ScalarType.Int64).item<long>() : null;
        var kernels = FusedKernels.Current; // the recompute in backward runs outside the model's forward
        var recompute = new Recompute(input =>
        {
            using var sameKernels = FusedKernels.Use(kernels);
            if (seed is long sd) manual_seed(sd);
            return layer.Forward(input, keptRope, keptMask, null);
        }, () =>
        {
            keptRope.Dispose();
            keptMask?.Dispose();
        });
        // Autograd runs a function's backward only when an input requires grad. With a frozen base (LoRA) the first layer's
        // input does not, yet the adapters inside the layer need that backward: mark the input (PEFT's enable_input_require_grads).
        if (!x.requires_grad) x = x.detach().requires_grad_(true);
        if (seed is long forwardSeed) manual_seed(forwardSeed);
        return CheckpointFunction.apply(x, recompute);
    }

    sealed record Recompute(Func<Tensor, Tensor> Forward, Action Release);

    sealed class CheckpointFunction : autograd.SingleTensorFunction<CheckpointFunction>
    {
        public override string Name => "CheckpointedDecoderLayer";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var x = (Tensor)vars[0];
            ctx.save_for_backward(new List<Tensor> { x });
            var recompute = (Recompute)vars[1];
            ctx.save_data("recompute", recompute);
            using var noGrad = no_grad();
            return recompute.Forward(x);
        }

        // The gradients this function returned to autograd by earlier backward calls. Their C# handles would keep
        // each layer's input gradient alive until the caller's dispose scope ends (one [B, T, H] tensor per layer);
        // by the time the next checkpointed layer runs its backward, autograd has consumed them, so they are
        // released then (the last one at the next step's backward or by the finalizer).
        [ThreadStatic] static List<Tensor>? _returned;

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            if (_returned != null)
            {
                foreach (var t in _returned) t.Dispose();
                _returned.Clear();
            }
            var recompute = (Recompute)ctx.get_data("recompute");
            Tensor grad;
            // Everything made here (the saved input's handle, the recomputed graph's output, the detached input that
            // aliases the saved activation) is released on return instead of at the end of the caller's scope.
            using (var scope = NewDisposeScope())
            {
                var x = ctx.get_saved_variables()[0];
                using var gradOn = enable_grad();
                var input = x.detach().requires_grad_(true);
                var output = recompute.Forward(input);
                // Re-entrant backward: parameter gradients accumulate as usual; the input's gradient flows on.
                autograd.backward(new List<Tensor> { output }, new List<Tensor> { gradOutput });
                grad = input.grad!.DetachFromDisposeScope();
            }
            recompute.Release();
            (_returned ??= new List<Tensor>()).Add(grad);
            return new List<Tensor> { grad, null! }; // one entry per apply() argument; the closure has none
        }
    }
}
