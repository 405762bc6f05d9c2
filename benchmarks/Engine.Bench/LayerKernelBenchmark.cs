using System.Diagnostics;
using System.Text.Json.Serialization;
using Engine.Kernels;
using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Bench;

/// <summary>
/// One row of the layer-kernel benchmark: a fused kernel (RMSNorm, RoPE, SwiGLU, GeGLU) against its TorchSharp
/// composite, forward + backward through autograd, both timed alternately in one run; the bytes the fused kernels
/// must move at least and the time that takes at the measured copy bandwidth (the floor). The native kernels are
/// also timed alone (forward + backward on buffers made once), so the row shows both what the kernels cost against
/// the floor and what a call through autograd adds: the node (<see cref="Engine.Kernels.Autograd.KernelNode"/>), the
/// engine, the handles and the allocation of the outputs, a fixed cost per call that does not grow with the tensors.
/// </summary>
public sealed record LayerKernelBenchResult
{
    [JsonPropertyName("kernel")] public string Kernel { get; init; } = "";
    [JsonPropertyName("dtype")] public string Dtype { get; init; } = "";
    [JsonPropertyName("shape")] public string Shape { get; init; } = "";
    [JsonPropertyName("threads")] public int Threads { get; init; }
    [JsonPropertyName("isa")] public string Isa { get; init; } = "";
    /// <summary>How bf16 outputs are rounded: "avx512bf16" (the CPU's instruction) or "integer" (<see cref="NativeKernels.Bf16Conversions"/>).</summary>
    [JsonPropertyName("bf16_conversions")] public string Bf16Conversions { get; init; } = "";
    [JsonPropertyName("fused_ms")] public double FusedMs { get; init; }
    [JsonPropertyName("composite_ms")] public double CompositeMs { get; init; }
    [JsonPropertyName("speedup")] public double Speedup => CompositeMs / FusedMs;
    /// <summary>Per-pair ratios composite / fused: [min, median, max].</summary>
    [JsonPropertyName("speedup_pairs")] public double[] SpeedupPairs { get; init; } = Array.Empty<double>();
    /// <summary>Bytes the fused forward + backward read and write at least (inputs, outputs, gradients once each).</summary>
    [JsonPropertyName("bytes_moved")] public long BytesMoved { get; init; }
    /// <summary>Median over the repeats of the copy bandwidth sampled beside them (GB/s, bytes read + written).</summary>
    [JsonPropertyName("copy_bandwidth_gb_s")] public double CopyBandwidthGbs { get; init; }
    /// <summary>The copy bandwidth per repeat (one sample per block of repeats): [min, median, max].</summary>
    [JsonPropertyName("copy_bandwidth_samples")] public double[] CopyBandwidthSamples { get; init; } = Array.Empty<double>();
    /// <summary><see cref="BytesMoved"/> at the median copy bandwidth.</summary>
    [JsonPropertyName("floor_ms")] public double FloorMs => BytesMoved / (CopyBandwidthGbs * 1e6);
    /// <summary>
    /// The target's ratio: each repeat's fused time over the floor at the bandwidth measured just before its block of
    /// repeats, median of the repeats (taken in the same moment, so a busy spell of the shared machine weighs on both).
    /// </summary>
    [JsonPropertyName("fused_over_floor")] public double FusedOverFloor => FusedOverFloorPairs.Length == 3 ? FusedOverFloorPairs[1] : FusedMs / FloorMs;
    /// <summary>The per-repeat ratios fused / floor: [min, median, max].</summary>
    [JsonPropertyName("fused_over_floor_pairs")] public double[] FusedOverFloorPairs { get; init; } = Array.Empty<double>();
    /// <summary>The native kernels alone (forward + backward, no autograd, outputs allocated once): median ms.</summary>
    [JsonPropertyName("kernel_ms")] public double KernelMs { get; init; }
    /// <summary>
    /// The kernels' own ratio to the floor: each repeat's kernel time over the floor at its block's bandwidth, median of
    /// the repeats. <see cref="FusedOverFloor"/> minus this is what the autograd call adds per call.
    /// </summary>
    [JsonPropertyName("kernel_over_floor")] public double KernelOverFloor => KernelOverFloorPairs.Length == 3 ? KernelOverFloorPairs[1] : KernelMs / FloorMs;
    /// <summary>The per-repeat ratios kernel / floor: [min, median, max].</summary>
    [JsonPropertyName("kernel_over_floor_pairs")] public double[] KernelOverFloorPairs { get; init; } = Array.Empty<double>();
    /// <summary>The stricter figure: the median fused time over the floor at the best bandwidth any repeat saw.</summary>
    [JsonPropertyName("fused_over_best_floor")] public double FusedOverBestFloor => CopyBandwidthSamples.Length == 3 ? FusedMs / (BytesMoved / (CopyBandwidthSamples[2] * 1e6)) : FusedOverFloor;
    [JsonPropertyName("min_median_max_ms")] public IReadOnlyDictionary<string, double[]> MinMedianMax { get; init; } = new Dictionary<string, double[]>();
    [JsonPropertyName("repeat")] public int Repeat { get; init; }
}

public static class LayerKernelBenchmark
{
    public static readonly string[] Kernels = { "rmsnorm", "rope", "swiglu", "geglu" };

    /// <summary>Rows for <paramref name="kernels"/> at <paramref name="tokens"/> tokens of the <paramref name="preset"/> model's shapes.</summary>
    public static IEnumerable<LayerKernelBenchResult> Run(IReadOnlyList<string> kernels, IReadOnlyList<string> dtypes, long tokens, string preset,
        int repeat, Action<string>? log = null)
    {
        NativeKernels.EnsureAvailable();
        var c = ModelPresets.All[preset];
        using var copy = new CopyProbe();
        foreach (string kernel in kernels)
            foreach (string dtypeName in dtypes)
            {
                log?.Invoke($"{kernel} {dtypeName} ...");
                yield return RunCase(kernel, TensorMemory.ParseDtype(dtypeName), dtypeName, tokens, c, repeat, copy);
            }
    }

    /// <summary>
    /// GB/s (bytes read + bytes written) of the faster of two 256 MB copies, on the kernels' thread count: torch's copy_
    /// (plain vector stores, each written line first read for ownership: 3 bytes cross the bus per 2 counted) and
    /// glibc's memmove on each thread's share (streaming stores at this size: 2 per 2). The fused kernels stream their
    /// large outputs, so the floor's rate comes from the copy that streams too, not the slower one. 256 MB is far beyond
    /// the caches: training's activations come from memory, not from a cache a benchmark loop warmed. Sampled in the
    /// kernels' own timing loop (<see cref="TimeWithFloor"/>), so each fused time has a floor measured at about the same moment.
    /// </summary>
    sealed unsafe class CopyProbe : IDisposable
    {
        readonly Tensor _src = ones(64L << 20), _dst;
        public CopyProbe() => _dst = zeros_like(_src); // touched: no page faults in the timed copies

        public double SampleGbs()
        {
            long bytes = _src.numel() * 4;
            byte* s = (byte*)TensorMemory.DataPointer(_src), d = (byte*)TensorMemory.DataPointer(_dst);
            int threads = Math.Max(1, NativeKernels.Threads);
            long share = (bytes / threads + 63) & ~63L;
            var sw = Stopwatch.StartNew();
            _dst.copy_(_src);
            double plain = sw.Elapsed.TotalSeconds;
            sw.Restart();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, k =>
            {
                long begin = k * share, length = Math.Min(bytes, begin + share) - begin;
                if (length > 0) System.Runtime.InteropServices.NativeMemory.Copy(s + begin, d + begin, (nuint)length);
            });
            double streamed = sw.Elapsed.TotalSeconds;
            return 2.0 * bytes / Math.Min(plain, streamed) / 1e9;
        }

        public void Dispose()
        {
            _src.Dispose();
            _dst.Dispose();
        }
    }

    /// <summary>Timed repeats per copy bandwidth sample.</summary>
    const int RepeatsPerCopySample = 3;

    /// <summary>
    /// The repeats in blocks of <see cref="RepeatsPerCopySample"/>: before each block one copy bandwidth sample, then one
    /// untimed composite + fused + kernel round (the 256 MB copy evicts everything, code and allocator state included:
    /// measured at 8 tokens, a fused RMSNorm right after it took 0.29 ms against 0.08), then the block's timed repeats:
    /// composite, fused, an untimed composite, the kernels alone. So the fused call and the kernels alone each follow a
    /// composite, which leaves the caches as a training step's other work does. Each fused and kernel time is paired with
    /// the bandwidth of its own block, measured a few milliseconds before.
    /// </summary>
    static (List<double> Fused, List<double> Composite, List<double> Kernel, List<double> Bandwidth) TimeWithFloor(int repeat, Action fused,
        Action composite, Action kernel, Action? setup, CopyProbe copy)
    {
        var (tf, tc, tk, bw) = (new List<double>(), new List<double>(), new List<double>(), new List<double>());
        double Once(Action action)
        {
            setup?.Invoke();
            var sw = Stopwatch.StartNew();
            action();
            return sw.Elapsed.TotalMilliseconds;
        }
        double gbs = 0;
        for (int i = 0; i < repeat; i++)
        {
            if (i % RepeatsPerCopySample == 0)
            {
                gbs = copy.SampleGbs();
                Once(composite);
                Once(fused);
                Once(kernel);
            }
            tc.Add(Once(composite));
            tf.Add(Once(fused));
            Once(composite);
            tk.Add(Once(kernel));
            bw.Add(gbs);
        }
        return (tf, tc, tk, bw);
    }

    static LayerKernelBenchResult RunCase(string kernel, ScalarType dtype, string dtypeName, long tokens, LlamaConfig c, int repeat, CopyProbe copy)
    {
        long e = dtype == ScalarType.BFloat16 ? 2 : 4;
        long batch = 8, t = tokens / batch;
        var gen = new Generator(3);
        Action fused, composite, kernelAlone;
        Action? setup = null, teardown = null;
        long bytes;
        string shape;
        var keep = new List<Tensor>();
        Tensor Keep(Tensor x) { keep.Add(x); return x; }
        switch (kernel)
        {
            case "rmsnorm":
            {
                var x = Keep(randn(new[] { batch, t, (long)c.HiddenSize }, generator: gen).to(dtype).requires_grad_(true));
                var g = Keep(randn(x.shape, generator: gen).to(dtype));
                var norm = new WeightRmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
                Action run(KernelChoice k) => () => Step(k, () => new[] { norm.forward(x) }, new[] { g }, x, norm.weight);
                (fused, composite) = (run(KernelChoice.Fused), run(KernelChoice.Torch));
                var (y, inv, dx) = (Keep(empty_like(x)), Keep(empty(batch * t, ScalarType.Float32)), Keep(empty_like(x)));
                kernelAlone = () =>
                {
                    LayerKernels.RmsNormForward(x, norm.weight!, (float)c.RmsNormEps, 0, y, inv);
                    LayerKernels.RmsNormBackward(x, norm.weight!, inv, g, 0, dx).Dispose(); // dw: n elements
                };
                long n = x.numel();
                bytes = 5 * n * e; // forward: read x, write y; backward: read x and dy, write dx
                shape = $"{batch * t}x{c.HiddenSize}";
                break;
            }
            case "rope":
            {
                var q0 = Keep(randn(new[] { batch, t, (long)c.NumHeads, c.HeadDim }, generator: gen).to(dtype).requires_grad_(true));
                var k0 = Keep(randn(new[] { batch, t, (long)c.NumKvHeads, c.HeadDim }, generator: gen).to(dtype).requires_grad_(true));
                var positions = Keep(arange(t).unsqueeze(0).expand(batch, t).contiguous());
                var rope = new RotaryTables(c, positions, dtype);
                var gq = Keep(randn(new[] { batch, (long)c.NumHeads, t, c.HeadDim }, generator: gen).to(dtype));
                var gk = Keep(randn(new[] { batch, (long)c.NumKvHeads, t, c.HeadDim }, generator: gen).to(dtype));
                // RoPE rotates the projections' fresh outputs in place. Each call gets clones of the leaves q0 and k0,
                // made untimed: non-leaf tensors it may rotate in place, whose gradients flow back to q0 and k0 through
                // libtorch's own clone node (no data pass), as a projection's output has a native node in training. So
                // only the rotation forward and backward (and the gradient's layout change, which training pays too) are
                // timed. (A C# no-op autograd function in their place cost each call two more custom functions.)
                Tensor? q = null, k = null;
                setup = () =>
                {
                    q?.Dispose();
                    k?.Dispose();
                    q = q0.clone();
                    k = k0.clone();
                };
                Action run(KernelChoice choice) => () => Step(choice, () =>
                {
                    var (rq, rk) = rope.ApplyToQueryKey(q!, k!);
                    return new[] { rq, rk };
                }, new[] { gq, gk }, q0, k0);
                (fused, composite) = (run(KernelChoice.Fused), run(KernelChoice.Torch));
                // The kernels alone: q and k rotated in place forward, and the gradients as attention hands them back
                // ([B, heads, T, d] seen as [B, T, heads, d]) rotated back into contiguous buffers.
                var (qa, ka) = (Keep(q0.detach().clone()), Keep(k0.detach().clone()));
                var (dq, dk) = (Keep(empty_like(q0)), Keep(empty_like(k0)));
                var (gqView, gkView) = (Keep(gq.transpose(1, 2)), Keep(gk.transpose(1, 2)));
                var (cos, sin) = rope.HalfTables();
                kernelAlone = () =>
                {
                    LayerKernels.Rope(qa, cos, sin, inverse: false);
                    LayerKernels.Rope(ka, cos, sin, inverse: false);
                    LayerKernels.RopeInto(gqView, dq, cos, sin, inverse: true);
                    LayerKernels.RopeInto(gkView, dk, cos, sin, inverse: true);
                };
                long n = q0.numel() + k0.numel();
                bytes = 4 * n * e; // in place: read + write q and k forward, their gradients backward
                shape = $"{batch * t}x({c.NumHeads}+{c.NumKvHeads})x{c.HeadDim}";
                teardown = () => { q?.Dispose(); k?.Dispose(); rope.Dispose(); };
                break;
            }
            case "swiglu":
            case "geglu":
            {
                var act = kernel == "swiglu" ? GatedActivation.SwiGlu : GatedActivation.GeGlu;
                var gate = Keep(randn(new[] { batch, t, (long)c.IntermediateSize }, generator: gen).to(dtype).requires_grad_(true));
                var up = Keep(randn(gate.shape, generator: gen).to(dtype).requires_grad_(true));
                var g = Keep(randn(gate.shape, generator: gen).to(dtype));
                Func<Tensor> torchForward = act == GatedActivation.SwiGlu
                    ? () => F.silu(gate) * up
                    : () => F.gelu(gate, TorchSharp.Modules.GELU.Approximate.tanh, false) * up;
                fused = () => Step(KernelChoice.Fused, () => new[] { LayerKernels.Gated(gate, up, act)! }, new[] { g }, gate, up);
                composite = () => Step(KernelChoice.Torch, () => new[] { torchForward() }, new[] { g }, gate, up);
                var (h, dGate, dUp) = (Keep(empty_like(gate)), Keep(empty_like(gate)), Keep(empty_like(gate)));
                kernelAlone = () =>
                {
                    LayerKernels.GluForward((int)act, gate, up, h);
                    LayerKernels.GluBackward((int)act, gate, up, g, dGate, dUp);
                };
                long n = gate.numel();
                bytes = 8 * n * e; // forward: read gate, up, write h; backward: read gate, up, dh, write both gradients
                shape = $"{batch * t}x{c.IntermediateSize}";
                break;
            }
            default: throw new EngineException($"unknown layer kernel '{kernel}' (expected one of: {string.Join(", ", Kernels)})");
        }
        try
        {
            var (fusedMs, compositeMs, kernelMs, bandwidth) = TimeWithFloor(repeat, fused, composite, kernelAlone, setup, copy);
            var (tf, tc, tk, bw) = (KernelBenchmark.Timing.Of(fusedMs), KernelBenchmark.Timing.Of(compositeMs), KernelBenchmark.Timing.Of(kernelMs),
                KernelBenchmark.Timing.Of(bandwidth));
            var speedups = KernelBenchmark.Timing.Of(compositeMs.Zip(fusedMs, (cm, fm) => cm / fm).ToList());
            List<double> OverFloor(List<double> ms) => ms.Zip(bandwidth, (m, gbs) => m / (bytes / (gbs * 1e6))).ToList();
            var (overFloor, kernelOverFloor) = (KernelBenchmark.Timing.Of(OverFloor(fusedMs)), KernelBenchmark.Timing.Of(OverFloor(kernelMs)));
            return new LayerKernelBenchResult
            {
                Kernel = kernel, Dtype = dtypeName, Shape = shape, Threads = NativeKernels.Threads, Isa = NativeKernels.IsaName, Bf16Conversions = NativeKernels.Bf16Conversions,
                FusedMs = tf.Median, CompositeMs = tc.Median, SpeedupPairs = speedups.ToArray(),
                BytesMoved = bytes, CopyBandwidthGbs = bw.Median, CopyBandwidthSamples = bw.ToArray(), FusedOverFloorPairs = overFloor.ToArray(),
                KernelMs = tk.Median, KernelOverFloorPairs = kernelOverFloor.ToArray(),
                Repeat = repeat,
                MinMedianMax = new Dictionary<string, double[]> { ["fused"] = tf.ToArray(), ["composite"] = tc.ToArray(), ["kernel"] = tk.ToArray() },
            };
        }
        finally
        {
            teardown?.Invoke();
            foreach (var k in keep) k.Dispose();
        }
    }

    /// <summary>
    /// One forward + backward as training runs it: the outputs' gradients flow back to <paramref name="inputs"/> with
    /// autograd.grad, which returns them instead of accumulating into leaves' .grad (an add and a zero-fill per call
    /// that belong to this harness, not to the kernel: in training these inputs are activations, not leaves).
    /// </summary>
    static void Step(KernelChoice choice, Func<Tensor[]> forward, Tensor[] upstream, params Tensor[] inputs)
    {
        using var scope = NewDisposeScope();
        using var use = FusedKernels.Use(choice);
        autograd.grad(forward(), inputs, upstream);
    }
}
