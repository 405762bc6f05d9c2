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
/// must move at least and the time that takes at the measured copy bandwidth (the floor).
/// </summary>
public sealed record LayerKernelBenchResult
{
    [JsonPropertyName("kernel")] public string Kernel { get; init; } = "";
    [JsonPropertyName("dtype")] public string Dtype { get; init; } = "";
    [JsonPropertyName("shape")] public string Shape { get; init; } = "";
    [JsonPropertyName("threads")] public int Threads { get; init; }
    [JsonPropertyName("isa")] public string Isa { get; init; } = "";
    [JsonPropertyName("fused_ms")] public double FusedMs { get; init; }
    [JsonPropertyName("composite_ms")] public double CompositeMs { get; init; }
    [JsonPropertyName("speedup")] public double Speedup => CompositeMs / FusedMs;
    /// <summary>Per-pair ratios composite / fused: [min, median, max].</summary>
    [JsonPropertyName("speedup_pairs")] public double[] SpeedupPairs { get; init; } = Array.Empty<double>();
    /// <summary>Bytes the fused forward + backward read and write at least (inputs, outputs, gradients once each).</summary>
    [JsonPropertyName("bytes_moved")] public long BytesMoved { get; init; }
    [JsonPropertyName("copy_bandwidth_gb_s")] public double CopyBandwidthGbs { get; init; }
    [JsonPropertyName("floor_ms")] public double FloorMs => BytesMoved / (CopyBandwidthGbs * 1e6);
    [JsonPropertyName("fused_over_floor")] public double FusedOverFloor => FusedMs / FloorMs;
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
        double bandwidth = CopyBandwidth(repeat);
        log?.Invoke($"copy bandwidth {bandwidth:F1} GB/s");
        foreach (string kernel in kernels)
            foreach (string dtypeName in dtypes)
            {
                log?.Invoke($"{kernel} {dtypeName} ...");
                yield return RunCase(kernel, TensorMemory.ParseDtype(dtypeName), dtypeName, tokens, c, repeat, bandwidth);
            }
    }

    /// <summary>GB/s of a 256 MB tensor copy (read + write), best of the repeats: the memory system's practical rate.</summary>
    static double CopyBandwidth(int repeat)
    {
        using var src = ones(64L << 20);
        using var dst = empty_like(src);
        double best = double.MaxValue;
        for (int i = 0; i < repeat + 1; i++)
        {
            var sw = Stopwatch.StartNew();
            dst.copy_(src);
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * src.numel() * 4 / best / 1e9;
    }

    static LayerKernelBenchResult RunCase(string kernel, ScalarType dtype, string dtypeName, long tokens, LlamaConfig c, int repeat, double bandwidth)
    {
        long e = dtype == ScalarType.BFloat16 ? 2 : 4;
        long batch = 8, t = tokens / batch;
        var gen = new Generator(3);
        Action fused, composite;
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
                Action run(KernelChoice k) => () => Step(k, () => norm.forward(x), g, x);
                (fused, composite) = (run(KernelChoice.Fused), run(KernelChoice.Torch));
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
                Action run(KernelChoice k) => () =>
                {
                    using var scope = NewDisposeScope();
                    using var choice = FusedKernels.Use(k);
                    // The projection outputs the attention layer rotates (a copy here, in both paths).
                    var (q, kk) = rope.ApplyToQueryKey(q0 * 1, k0 * 1);
                    autograd.backward(new[] { q, kk }, new[] { gq, gk });
                    q0.grad!.zero_();
                    k0.grad!.zero_();
                };
                (fused, composite) = (run(KernelChoice.Fused), run(KernelChoice.Torch));
                long n = q0.numel() + k0.numel();
                bytes = 4 * n * e; // in place: read + write q and k forward, their gradients backward
                shape = $"{batch * t}x({c.NumHeads}+{c.NumKvHeads})x{c.HeadDim}";
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
                fused = () => Step(KernelChoice.Fused, () => LayerKernels.Gated(gate, up, act)!, g, gate, up);
                composite = () => Step(KernelChoice.Torch, torchForward, g, gate, up);
                long n = gate.numel();
                bytes = 8 * n * e; // forward: read gate, up, write h; backward: read gate, up, dh, write both gradients
                shape = $"{batch * t}x{c.IntermediateSize}";
                break;
            }
            default: throw new EngineException($"unknown layer kernel '{kernel}' (expected one of: {string.Join(", ", Kernels)})");
        }
        try
        {
            var (tf, tc, ratio) = KernelBenchmark.TimeAlternatingPublic(repeat, fused, composite);
            return new LayerKernelBenchResult
            {
                Kernel = kernel, Dtype = dtypeName, Shape = shape, Threads = NativeKernels.Threads, Isa = NativeKernels.IsaName,
                FusedMs = tf.Median, CompositeMs = tc.Median, SpeedupPairs = ratio.ToArray().Select(r => 1 / r).Reverse().ToArray(),
                BytesMoved = bytes, CopyBandwidthGbs = bandwidth, Repeat = repeat,
                MinMedianMax = new Dictionary<string, double[]> { ["fused"] = tf.ToArray(), ["composite"] = tc.ToArray() },
            };
        }
        finally
        {
            foreach (var k in keep) k.Dispose();
        }
    }

    static void Step(KernelChoice choice, Func<Tensor> forward, Tensor upstream, params Tensor[] leaves)
    {
        using var scope = NewDisposeScope();
        using var use = FusedKernels.Use(choice);
        forward().backward(new[] { upstream });
        foreach (var l in leaves) l.grad!.zero_();
    }
}
