using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Engine.Kernels;

/// <summary>
/// Releases the C# handles of the gradients the LM head's autograd functions return, once autograd has consumed them.
/// A handle made inside a backward lands in the dispose scope of whoever called backward (the training step), and
/// libtorch takes its own reference to a returned gradient when the backward returns: from then on the handle only
/// keeps the storage alive — for the fused head the [M, V] logits, overwritten with their gradient — through the whole
/// decoder backward. The head's functions hand their returned gradients to <see cref="Defer"/>; <see cref="After"/>
/// puts a pass-through node in front of the head whose backward runs once the head's gradients have flowed into the
/// decoder, and disposes them there (as <c>ActivationCheckpointing</c> does for its own handles). A gradient whose
/// release point never runs is still disposed with the caller's scope, as before.
/// </summary>
internal static class LogProbGradientRelease
{
    // Per thread: autograd runs a device's backward nodes on one thread, so a head's backward and its release point share it.
    [ThreadStatic] static List<Tensor>? _pending;

    /// <summary>A gradient a head's backward is about to return: disposed at the next release point.</summary>
    public static Tensor Defer(Tensor gradient)
    {
        (_pending ??= new List<Tensor>()).Add(gradient);
        return gradient;
    }

    /// <summary><paramref name="headInput"/> itself, behind a node whose backward releases the deferred gradients
    /// (only when a gradient will flow: otherwise there is nothing to release).</summary>
    public static Tensor After(Tensor headInput) =>
        headInput.requires_grad && is_grad_enabled() ? ReleasePoint.apply(headInput) : headInput;

    /// <summary>Disposes the deferred handles; autograd holds its own references to whatever it still needs.</summary>
    internal static void ReleasePending()
    {
        if (_pending is null) return;
        foreach (var t in _pending) t.Dispose();
        _pending.Clear();
    }

    /// <summary>Handles deferred and not yet released on this thread (for tests).</summary>
    internal static int PendingCount => _pending?.Count ?? 0;

    sealed class ReleasePoint : SingleTensorFunction<ReleasePoint>
    {
        public override string Name => "HeadGradientRelease";

        // detach shares the storage without a copy (and without being a view an in-place kernel would refuse).
        public override Tensor forward(AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).detach();

        public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
        {
            // Runs after the head's input gradient exists, so every gradient the head returned has been consumed.
            ReleasePending();
            return new List<Tensor> { gradOutput };
        }
    }
}
