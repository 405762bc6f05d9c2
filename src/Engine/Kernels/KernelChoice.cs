using Engine.Util;

namespace Engine.Kernels;

/// <summary>How the decoder's RMSNorm, RoPE and gated MLP activation run.</summary>
public enum KernelChoice
{
    /// <summary>The fused native kernels (one pass forward, one backward; only per-row inverse RMS and the MLP inputs saved).</summary>
    [Spelling("fused")] Fused,
    /// <summary>TorchSharp's composite ops (the reference).</summary>
    [Spelling("torch")] Torch,
}

/// <summary>
/// The kernel choice in force on this thread: a model sets it around its forward (<see cref="Use"/>), and the
/// layer code reads <see cref="Current"/>. Outside any forward it is <see cref="Default"/>.
/// </summary>
public static class FusedKernels
{
    [ThreadStatic] static KernelChoice? _current;

    /// <summary>The one declaration of the default: <see cref="Engine.Training.StepSettings.Kernels"/> (and so the CLI's
    /// <c>--kernels</c>) starts from it, and a model whose <c>Kernels</c> is unset uses it. Fused: measured faster than the
    /// composites in f32 and bf16 (docs/kernels.md).</summary>
    public static KernelChoice Default => KernelChoice.Fused;

    public static KernelChoice Current => _current ?? Default;

    /// <summary>Sets the choice on this thread until the returned handle is disposed (nests).</summary>
    public static IDisposable Use(KernelChoice choice)
    {
        var previous = _current;
        _current = choice;
        return new Restore(previous);
    }

    sealed class Restore(KernelChoice? previous) : IDisposable
    {
        bool _done;
        public void Dispose()
        {
            if (_done) return;
            _done = true;
            _current = previous;
        }
    }
}
