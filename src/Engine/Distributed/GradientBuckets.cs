using static TorchSharp.torch;

namespace Engine.Distributed;

/// <summary>
/// Data-parallel gradient summing in fp32 buckets (PyTorch DDP's scheme). Parameters are grouped, in the order their
/// gradients become final during backward, into flat fp32 CPU buffers of about <c>capBytes</c>; a bucket's all-reduce
/// starts as soon as the backward signals the stage that completes it (<see cref="StageDone"/>, called by a
/// <see cref="BackwardSignal"/> at each decoder layer's input), and the rest start at <see cref="Finish"/>, which waits for
/// all of them and writes the sums back into the parameters' gradients (bf16 gradients are rounded once, there).
/// The callers weight each rank's loss by its share of the global batch, so the sum is the global mean gradient.
/// </summary>
public sealed class GradientBuckets : IDisposable
{
    /// <summary>PyTorch DDP's default bucket_cap_mb (25 MiB).</summary>
    public const long DefaultCapBytes = 25L << 20;

    sealed class Bucket
    {
        public required List<Tensor> Parameters;
        public required long[] Offsets;
        public required Tensor Flat;
        /// <summary>The stage whose completion makes every gradient in the bucket final; −1: only at <see cref="Finish"/>.</summary>
        public required int ReadyStage;
        public IPendingReduction? Pending;
    }

    readonly ICommunicator _ranks;
    readonly List<Bucket> _buckets = new();

    /// <summary>When set, <see cref="StageDone"/> starts reductions (the last micro-batch of a step); otherwise it does nothing.</summary>
    public bool Armed { get; set; }
    public int Count => _buckets.Count;
    /// <summary>Buckets started during backward in the last <see cref="Finish"/>ed step (the rest started after it).</summary>
    public int StartedDuringBackward { get; private set; }
    /// <summary>Seconds the last <see cref="Finish"/> spent after backward: packing the rest, waiting for every sum, writing them back.</summary>
    public double FinishSeconds { get; private set; }
    /// <summary>fp32 elements summed per step, i.e. the payload of one all-reduce of every gradient.</summary>
    public long Elements => _buckets.Sum(b => b.Flat.numel());

    /// <param name="parameters">each trained parameter with its stage: the stages are signalled in decreasing order during backward
    /// (the decoder's last layer first); stage −1 parameters (embeddings, final norm, head) are final only after backward</param>
    public GradientBuckets(ICommunicator ranks, IEnumerable<(Tensor Parameter, int Stage)> parameters, long capBytes = DefaultCapBytes)
    {
        if (capBytes <= 0) throw new ArgumentException($"the bucket size must be positive (got {capBytes} bytes)");
        _ranks = ranks;
        var ordered = parameters.Select((p, i) => (p.Parameter, p.Stage, i))
            .OrderBy(p => p.Stage < 0 ? 1 : 0).ThenByDescending(p => p.Stage).ThenBy(p => p.i).ToList();
        var current = new List<(Tensor Parameter, int Stage)>();
        long bytes = 0;
        void Close()
        {
            if (current.Count == 0) return;
            var offsets = new long[current.Count];
            long n = 0;
            for (int i = 0; i < current.Count; i++) { offsets[i] = n; n += current[i].Parameter.numel(); }
            _buckets.Add(new Bucket
            {
                Parameters = current.Select(c => c.Parameter).ToList(), Offsets = offsets,
                Flat = zeros(n, dtype: ScalarType.Float32), ReadyStage = current.Any(c => c.Stage < 0) ? -1 : current.Min(c => c.Stage),
            });
            current = new List<(Tensor, int)>();
            bytes = 0;
        }
        foreach (var (p, stage, _) in ordered)
        {
            // Gradients that are final only after backward never share a bucket with earlier ones.
            if (current.Count > 0 && (stage < 0) != (current[^1].Stage < 0)) Close();
            current.Add((p, stage));
            bytes += p.numel() * 4;
            if (bytes >= capBytes) Close();
        }
        Close();
    }

    /// <summary>Backward has finished <paramref name="stage"/>: start every bucket that is now complete, and drive the running ones.</summary>
    public void StageDone(int stage)
    {
        if (!Armed) return;
        foreach (var b in _buckets)
            if (b.Pending is null && b.ReadyStage >= 0 && b.ReadyStage >= stage)
            {
                Start(b);
                StartedDuringBackward++;
            }
        // MPI progresses non-blocking collectives only inside MPI calls: polling here overlaps them with the rest of backward.
        foreach (var b in _buckets) b.Pending?.Poll();
    }

    void Start(Bucket b)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < b.Parameters.Count; i++)
        {
            var p = b.Parameters[i];
            using var slice = b.Flat.narrow(0, b.Offsets[i], p.numel());
            using var grad = p.grad;
            if (grad is null) slice.zero_();
            else
            {
                using var flat = grad.reshape(-1);
                slice.copy_(flat);
            }
        }
        b.Pending = _ranks.StartAllReduceSum(b.Flat);
    }

    /// <summary>Starts what backward did not, waits for every bucket, and writes the sums into the gradients.</summary>
    public void Finish()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Armed = false;
        int early = _buckets.Count(b => b.Pending is not null);
        foreach (var b in _buckets)
            if (b.Pending is null) Start(b);
        using var noGrad = no_grad();
        foreach (var b in _buckets)
        {
            b.Pending!.Wait();
            b.Pending = null;
            for (int i = 0; i < b.Parameters.Count; i++)
            {
                var p = b.Parameters[i];
                using var grad = p.grad;
                if (grad is null)
                    throw new InvalidOperationException("a parameter has no gradient on this rank; every rank must compute every parameter's gradient");
                using var slice = b.Flat.narrow(0, b.Offsets[i], p.numel());
                using var shaped = slice.view(grad.shape);
                grad.copy_(shaped);
            }
        }
        StartedDuringBackward = early;
        BackwardSignal.ReleaseReturned();
        FinishSeconds = clock.Elapsed.TotalSeconds;
    }

    public void Dispose()
    {
        foreach (var b in _buckets) b.Flat.Dispose();
    }
}

/// <summary>
/// An identity on a tensor whose backward calls an action once the gradient with respect to that tensor is
/// computed. TorchSharp (0.107) has no tensor or post-accumulate-grad hooks; placed at a decoder layer's input, this
/// runs after the layer's whole backward, when libtorch has already accumulated the layer's parameter gradients
/// (AccumulateGrad nodes run before any other ready node).
/// </summary>
public static class BackwardSignal
{
    public static Tensor Attach(Tensor x, Action onBackward) => Marker.apply(x, onBackward);

    // The gradients returned to autograd stay referenced by their C# handles until released here (see Finish).
    [ThreadStatic] static List<Tensor>? _returned;

    internal static void ReleaseReturned()
    {
        if (_returned is null) return;
        foreach (var t in _returned) t.Dispose();
        _returned.Clear();
    }

    sealed class Marker : autograd.SingleTensorFunction<Marker>
    {
        public override string Name => "GradientReadySignal";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("signal", vars[1]);
            return ((Tensor)vars[0]).alias();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            ((Action)ctx.get_data("signal"))();
            var grad = gradOutput.alias().DetachFromDisposeScope();
            (_returned ??= new List<Tensor>()).Add(grad);
            return new List<Tensor> { grad, null! };
        }
    }
}
