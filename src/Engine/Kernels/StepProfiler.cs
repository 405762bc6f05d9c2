using System.Diagnostics;
using Engine.Util;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Engine.Kernels;

/// <summary>The op classes a training step's time is split into.</summary>
public enum OpClass
{
    [Spelling("matmul")] Matmul,
    [Spelling("attention")] Attention,
    [Spelling("norm")] Norm,
    [Spelling("activation")] Activation,
    [Spelling("rope")] Rope,
    [Spelling("head")] Head,
    [Spelling("optimizer")] Optimizer,
    [Spelling("conversion")] Conversion,
    /// <summary>Everything outside a marked region (embedding, residual adds, the objective, autograd's own work).</summary>
    [Spelling("other")] Other,
}

/// <summary>
/// Where a step's time goes, by <see cref="OpClass"/>, forward and backward. Code marks its regions with
/// <see cref="Run"/>; while a profiler is <see cref="Start"/>ed, a region's forward time is taken on entry and exit,
/// and two identity autograd markers around it record when its backward starts (the output's gradient arrives) and
/// ends (the input's gradient leaves). Time between consecutive events goes to the innermost open region
/// (exclusive time), so nested regions (a conversion inside a norm) are not counted twice. Autograd runs a CPU
/// graph's nodes on one thread, latest-created first, so a region's backward nodes run between its two markers;
/// gradients that leave a region by another input (the up projection of a gated MLP) are counted with it.
/// When no profiler is started, <see cref="Run"/> is a plain call.
/// </summary>
public sealed class StepProfiler
{
    [ThreadStatic] static StepProfiler? _active;

    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly Stack<OpClass> _open = new();
    readonly double[] _ms = new double[Enum.GetValues<OpClass>().Length];
    double _last;

    /// <summary>Starts collecting on this thread (until <see cref="Stop"/>).</summary>
    public static StepProfiler Start()
    {
        var p = new StepProfiler();
        p._last = p.Now;
        _active = p;
        return p;
    }

    public void Stop()
    {
        Flush();
        if (_active == this) _active = null;
    }

    double Now => _clock.Elapsed.TotalMilliseconds;

    void Flush()
    {
        double now = Now;
        _ms[(int)(_open.Count > 0 ? _open.Peek() : OpClass.Other)] += now - _last;
        _last = now;
    }

    void Open(OpClass c) { Flush(); _open.Push(c); }

    void Close(OpClass c)
    {
        Flush();
        if (_open.Count > 0 && _open.Peek() == c) _open.Pop();
    }

    /// <summary>Adds time measured elsewhere (the optimizer step, which autograd does not see).</summary>
    public static T Time<T>(OpClass c, Func<T> body)
    {
        var p = _active;
        if (p is null) return body();
        p.Open(c);
        try { return body(); }
        finally { p.Close(c); }
    }

    /// <summary>
    /// Runs <paramref name="body"/> on <paramref name="input"/> as a region of class <paramref name="c"/>. The input
    /// and output pass through identity markers only while a profiler is active.
    /// </summary>
    public static Tensor Run(OpClass c, Tensor input, Func<Tensor, Tensor> body)
    {
        if (_active is null) return body(input);
        var x = Enter(c, input);
        Tensor y;
        try { y = body(x); }
        finally { _active?.Close(c); }
        return Marked(c, y, opens: true);
    }

    /// <summary>Opens a region of class <paramref name="c"/> whose input is <paramref name="input"/> (for regions with several outputs; close with <see cref="Exit"/>).</summary>
    public static Tensor Enter(OpClass c, Tensor input)
    {
        var p = _active;
        if (p is null) return input;
        var x = Marked(c, input, opens: false);
        p.Open(c);
        return x;
    }

    /// <summary>Closes the region <see cref="Enter"/> opened; <paramref name="output"/> is the output whose gradient starts its backward.</summary>
    public static Tensor Exit(OpClass c, Tensor output)
    {
        var p = _active;
        if (p is null) return output;
        p.Close(c);
        return Marked(c, output, opens: true);
    }

    static Tensor Marked(OpClass c, Tensor t, bool opens) =>
        _active is { } p && t.requires_grad && is_grad_enabled() ? Marker.apply(t, new MarkerEvent(p, c, opens)) : t;

    /// <summary>Milliseconds per class since <see cref="Start"/> (call after <see cref="Stop"/>).</summary>
    public IReadOnlyDictionary<string, double> Milliseconds =>
        Enum.GetValues<OpClass>().ToDictionary(c => Spelling.Of(c), c => _ms[(int)c]);

    /// <summary>What a marker does when the gradient passes it: the output marker opens the region, the input marker closes it.</summary>
    sealed record MarkerEvent(StepProfiler Profiler, OpClass Class, bool Opens);

    sealed class Marker : SingleTensorFunction<Marker>
    {
        public override string Name => "ProfileMarker";

        public override Tensor forward(AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("event", vars[1]);
            // detach shares storage without being a view, so in-place kernels may still rotate the output.
            return ((Tensor)vars[0]).detach();
        }

        public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
        {
            var e = (MarkerEvent)ctx.get_data("event");
            if (e.Opens) e.Profiler.Open(e.Class);
            else e.Profiler.Close(e.Class);
            return new List<Tensor> { gradOutput.alias(), null! };
        }
    }
}
