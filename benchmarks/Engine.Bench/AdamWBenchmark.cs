using System.Diagnostics;
using System.Text.Json.Serialization;
using Engine.Kernels;
using Engine.Models;
using Engine.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;
using AdamW = Engine.Training.AdamW;

namespace Engine.Bench;

/// <summary>
/// One optimizer-step case of `bench kernels`: clipping + AdamW over every parameter of a model preset, the
/// composite optimizer (libtorch ops per tensor) against the multi-tensor kernel, and the memory-bandwidth floor.
/// Times in ms (medians of the repeats; [min, median, max] in <see cref="MinMedianMax"/>).
/// </summary>
public sealed record AdamWBenchResult
{
    [JsonPropertyName("kernel")] public string Kernel => "adamw";
    [JsonPropertyName("model")] public string Model { get; init; } = "";
    [JsonPropertyName("parameters")] public long Parameters { get; init; }
    [JsonPropertyName("tensors")] public int Tensors { get; init; }
    /// <summary>f32: f32 weights; bf16: bf16 weights with fp32 master weights.</summary>
    [JsonPropertyName("dtype")] public string Dtype { get; init; } = "";
    [JsonPropertyName("state_dtype")] public string StateDtype { get; init; } = "";
    [JsonPropertyName("threads")] public int Threads { get; init; }
    [JsonPropertyName("isa")] public string Isa { get; init; } = "";
    /// <summary>The composite optimizer: ClipGradients + Step with <see cref="OptimizerKernel.Torch"/>.</summary>
    [JsonPropertyName("torch_ms")] public double TorchMs { get; init; }
    /// <summary>The same with <see cref="OptimizerKernel.Fused"/>: a norm pass over the gradients, then the update pass.</summary>
    [JsonPropertyName("fused_ms")] public double FusedMs { get; init; }
    /// <summary>The update pass of the fused kernel alone (no norm).</summary>
    [JsonPropertyName("fused_update_ms")] public double FusedUpdateMs { get; init; }
    /// <summary>engine_adamw_floor: the update pass's loads and stores with one add per array.</summary>
    [JsonPropertyName("floor_update_ms")] public double FloorUpdateMs { get; init; }
    /// <summary>Bytes the fused step must move: the norm pass reads every gradient; the update reads gradient, weight
    /// (or master) and both moments, and writes the moments, the master and the weight.</summary>
    [JsonPropertyName("bytes_moved")] public long BytesMoved { get; init; }
    [JsonPropertyName("update_bytes")] public long UpdateBytes { get; init; }
    /// <summary>update_bytes / floor_update_ms: the bandwidth the floor loop reaches, in GB/s.</summary>
    [JsonPropertyName("bandwidth_gbs")] public double BandwidthGBs => UpdateBytes / FloorUpdateMs / 1e6;
    /// <summary>bytes_moved at that bandwidth: the memory-bandwidth floor of the whole fused step.</summary>
    [JsonPropertyName("floor_ms")] public double FloorMs => BytesMoved / (BandwidthGBs * 1e6);
    [JsonPropertyName("speedup")] public double Speedup => TorchMs / FusedMs;
    [JsonPropertyName("fused_over_floor")] public double FusedOverFloor => FusedMs / FloorMs;
    /// <summary>[min, median, max] per timed figure (keys as the *_ms fields without the suffix) and of the per-repeat
    /// ratios "speedup_pairs" (torch / fused run back to back) and "fused_over_floor_pairs".</summary>
    [JsonPropertyName("min_median_max_ms")] public IReadOnlyDictionary<string, double[]> MinMedianMax { get; init; } = new Dictionary<string, double[]>();
    [JsonPropertyName("repeat")] public int Repeat { get; init; }
    [JsonPropertyName("machine")] public Dictionary<string, object>? Machine { get; init; }
    [JsonPropertyName("warnings")] public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();

    /// <summary>This case with the machine it ran on and a warning for each timed figure whose spread is too wide.</summary>
    public AdamWBenchResult Described(BenchmarkMachine machine) => this with
    {
        Machine = machine.ToJson(),
        Warnings = MinMedianMax.Where(f => !f.Key.EndsWith("_pairs"))
            .Select(f => new Spread(f.Value[0], f.Value[1], f.Value[2]).WarningFor($"adamw {Dtype}/{StateDtype} {f.Key}", machine))
            .OfType<string>().ToList(),
    };
}

public static class AdamWBenchmark
{
    /// <summary>f32 weights and f32 moments; bf16 weights + fp32 masters with f32, then bf16 moments.</summary>
    public static readonly (string Dtype, string State)[] Cases = { ("f32", "f32"), ("bf16", "f32"), ("bf16", "bf16") };

    public static IEnumerable<AdamWBenchResult> Run(KernelBenchOptions options, Action<string>? log = null)
    {
        NativeKernels.EnsureAvailable();
        NativeKernels.Threads = options.Threads ?? 0;
        if (!NativeKernels.TryForceIsa(options.Isa))
            throw new EngineException($"this CPU (or this build of the native library) has no {options.Isa} kernels");
        foreach (var (dtype, state) in Cases)
            if (options.Dtypes.Contains(dtype))
            {
                log?.Invoke($"adamw {options.AdamWModel} {dtype} weights, {state} moments ...");
                yield return RunCase(options, dtype, state);
            }
    }

    static double Once(Action action, Action setup)
    {
        setup();
        var sw = Stopwatch.StartNew();
        action();
        return sw.Elapsed.TotalMilliseconds;
    }

    static AdamWBenchResult RunCase(KernelBenchOptions options, string dtypeName, string stateName)
    {
        var dtype = dtypeName == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        var stateDtype = stateName == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        using var scope = NewDisposeScope();
        // The model's real parameter list (names, shapes, which are decayed), with random values.
        var parameters = new List<(string, Parameter)>();
        using (var model = TrainingSession.LoadPolicy(options.AdamWModel, ScalarType.Float32, requireTokenizer: false, seed: 7).Model)
        {
            var gen = new Generator(7);
            foreach (var (name, p) in model.named_parameters())
                parameters.Add((name, new Parameter((0.02f * randn(p.shape, generator: gen)).to(dtype))));
        }
        // Gradients as training leaves them (norm far above the max norm of 1, so both paths clip), restored before
        // every timed run: the composite path scales them in place.
        var grads = parameters.Select(p => randn(p.Item2.shape, generator: new Generator(11)).to(dtype)).ToList();
        void RestoreGrads()
        {
            using var _ = no_grad();
            for (int i = 0; i < parameters.Count; i++)
            {
                if (parameters[i].Item2.grad is null) parameters[i].Item2.grad = grads[i].clone();
                else
                {
                    using var g = parameters[i].Item2.grad;
                    g!.copy_(grads[i]);
                }
            }
        }
        RestoreGrads();
        using var torchOpt = new AdamW(parameters, weightDecay: 0.1, stateDtype: stateDtype, kernel: OptimizerKernel.Torch);
        using var fusedOpt = new AdamW(parameters, weightDecay: 0.1, stateDtype: stateDtype, kernel: OptimizerKernel.Fused);
        const double lr = 1e-4, maxNorm = 1.0;
        void TorchStep() { torchOpt.ClipGradients(maxNorm); torchOpt.Step(lr); }
        void FusedStep() { fusedOpt.ClipGradients(maxNorm); fusedOpt.Step(lr); }

        // The raw descriptors for the update-only and floor figures (the fused optimizer's own arrays).
        var descriptors = Descriptors(fusedOpt, parameters);
        var hyper = new NativeKernels.AdamWHyper
        {
            Beta1 = 0.9f, OneMinusBeta1 = 0.1f, Beta2 = 0.999f, OneMinusBeta2 = 0.001f, Eps = 1e-8f, BiasCorrection2 = 0.5f,
            StepSize = -1e-4f, DecayFactor = 1f, GradScale = 1f,
        };
        void FusedUpdate() => NativeKernels.AdamWStep(descriptors, hyper);
        void FloorUpdate()
        {
            // The floor's adds would grow the arrays without bound over the repeats: add 0 (same loads and stores).
            NativeKernels.AdamWFloor(descriptors, hyper with { GradScale = 0f });
        }

        var torchT = new List<double>();
        var fusedT = new List<double>();
        var updateT = new List<double>();
        var floorT = new List<double>();
        // Warm-up, then the four alternated, so all see the same load on a shared machine.
        for (int i = -1; i < options.Repeat; i++)
        {
            double t = Once(TorchStep, RestoreGrads), f = Once(FusedStep, RestoreGrads);
            double u = Once(FusedUpdate, RestoreGrads), fl = Once(FloorUpdate, RestoreGrads);
            if (i < 0) continue;
            torchT.Add(t); fusedT.Add(f); updateT.Add(u); floorT.Add(fl);
        }
        long n = parameters.Sum(p => p.Item2.numel());
        long g = dtype == ScalarType.BFloat16 ? 2 : 4, s = stateDtype == ScalarType.BFloat16 ? 2 : 4;
        bool master = dtype == ScalarType.BFloat16;
        long updateBytes = n * (g + (master ? 4 : g) + 2 * s + 2 * s + (master ? 4 : 0) + g);
        long bytesMoved = n * g + updateBytes;
        var result = new AdamWBenchResult
        {
            Model = options.AdamWModel, Parameters = n, Tensors = parameters.Count, Dtype = dtypeName, StateDtype = stateName,
            Threads = NativeKernels.Threads, Isa = NativeKernels.IsaName,
            TorchMs = KernelBenchmark.Timing.Of(torchT).Median, FusedMs = KernelBenchmark.Timing.Of(fusedT).Median,
            FusedUpdateMs = KernelBenchmark.Timing.Of(updateT).Median, FloorUpdateMs = KernelBenchmark.Timing.Of(floorT).Median,
            UpdateBytes = updateBytes, BytesMoved = bytesMoved, Repeat = options.Repeat,
        };
        var floorWhole = floorT.Select(x => x * bytesMoved / updateBytes).ToList();
        result = result with
        {
            MinMedianMax = new Dictionary<string, double[]>
            {
                ["torch"] = KernelBenchmark.Timing.Of(torchT).ToArray(),
                ["fused"] = KernelBenchmark.Timing.Of(fusedT).ToArray(),
                ["fused_update"] = KernelBenchmark.Timing.Of(updateT).ToArray(),
                ["floor_update"] = KernelBenchmark.Timing.Of(floorT).ToArray(),
                ["floor"] = KernelBenchmark.Timing.Of(floorWhole).ToArray(),
                ["speedup_pairs"] = KernelBenchmark.Timing.Of(torchT.Zip(fusedT, (a, b) => a / b).ToList()).ToArray(),
                ["fused_over_floor_pairs"] = KernelBenchmark.Timing.Of(fusedT.Zip(floorWhole, (a, b) => a / b).ToList()).ToArray(),
            },
        };
        foreach (var (_, p) in parameters) p.grad = null;
        return result;
    }

    static NativeKernels.AdamWTensor[] Descriptors(AdamW optimizer, List<(string, Parameter)> parameters)
    {
        var list = new List<NativeKernels.AdamWTensor>();
        foreach (var s in optimizer.Slots)
        {
            var p = s.Parameter;
            using var grad = p.grad ?? throw new InvalidOperationException("gradients are set before the descriptors are built");
            list.Add(new NativeKernels.AdamWTensor
            {
                Param = Util.TensorMemory.DataPointer(p),
                Master = s.Master is null ? IntPtr.Zero : Util.TensorMemory.DataPointer(s.Master),
                Grad = Util.TensorMemory.DataPointer(grad),
                ExpAvg = Util.TensorMemory.DataPointer(s.ExpAvg),
                ExpAvgSq = Util.TensorMemory.DataPointer(s.ExpAvgSq),
                Numel = p.numel(),
                ParamDtype = p.dtype == ScalarType.Float32 ? NativeKernels.DtypeF32 : NativeKernels.DtypeBf16,
                StateDtype = s.ExpAvg.dtype == ScalarType.Float32 ? NativeKernels.DtypeF32 : NativeKernels.DtypeBf16,
                Decay = s.Decay ? 1 : 0,
            });
        }
        return list.ToArray();
    }
}
