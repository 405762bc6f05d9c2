using System.Text.Json.Serialization;
using Engine.Kernels;
using Engine.Kernels.Quantized;
using static TorchSharp.torch;

namespace Engine.Bench;

/// <summary>
/// One case of <see cref="QuantizedMatmulBenchmark"/>: the dequantizing matmul (bf16 activations, 4-bit or 8-bit
/// weight) against TorchSharp's bf16 matmul with the same weight in bf16, forward (x·Wᵀ) and input gradient (dy·W),
/// alternated in the same run. Times in ms; ratios are bf16-matmul time / quantized time (= rate ratio).
/// </summary>
public sealed record QuantizedMatmulBenchResult
{
    [JsonPropertyName("case")] public string Case => "qmatmul";
    [JsonPropertyName("rows")] public long Rows { get; init; }
    [JsonPropertyName("out_features")] public long OutFeatures { get; init; }
    [JsonPropertyName("in_features")] public long InFeatures { get; init; }
    [JsonPropertyName("format")] public string Format { get; init; } = "";
    [JsonPropertyName("dtype")] public string Dtype => "bf16";
    [JsonPropertyName("threads")] public int Threads { get; init; }
    [JsonPropertyName("isa")] public string Isa { get; init; } = "";
    /// <summary>Whether the AVX512-BF16 dot-product kernel ran (else the fp32-FMA kernel).</summary>
    [JsonPropertyName("bf16_dot")] public bool Bf16Dot { get; init; }
    [JsonPropertyName("bf16_matmul_ms")] public double Bf16MatmulMs { get; init; }
    [JsonPropertyName("qmatmul_ms")] public double QmatmulMs { get; init; }
    [JsonPropertyName("bf16_input_grad_ms")] public double Bf16InputGradMs { get; init; }
    [JsonPropertyName("qmatmul_input_grad_ms")] public double QmatmulInputGradMs { get; init; }
    /// <summary>Forward rate of the quantized matmul relative to the bf16 matmul: ratio of the medians (target ≥ 0.6).</summary>
    [JsonPropertyName("forward_rate_ratio")] public double ForwardRateRatio => Bf16MatmulMs / QmatmulMs;
    [JsonPropertyName("input_grad_rate_ratio")] public double InputGradRateRatio => Bf16InputGradMs / QmatmulInputGradMs;
    [JsonPropertyName("qmatmul_gflops")] public double QmatmulGflops => 2.0 * Rows * OutFeatures * InFeatures / (QmatmulMs * 1e6);
    [JsonPropertyName("bf16_matmul_gflops")] public double Bf16MatmulGflops => 2.0 * Rows * OutFeatures * InFeatures / (Bf16MatmulMs * 1e6);
    /// <summary>[min, median, max] per timed figure, and of the per-pair rate ratios ("forward_rate_ratio_pairs", "input_grad_rate_ratio_pairs").</summary>
    [JsonPropertyName("min_median_max")] public IReadOnlyDictionary<string, double[]> MinMedianMax { get; init; } = new Dictionary<string, double[]>();
    [JsonPropertyName("weight_bytes")] public long WeightBytes { get; init; }
    [JsonPropertyName("bf16_weight_bytes")] public long Bf16WeightBytes => OutFeatures * InFeatures * 2;
    [JsonPropertyName("repeat")] public int Repeat { get; init; }
}

public static class QuantizedMatmulBenchmark
{
    public static readonly long[] DefaultRows = { 512, 2048 };

    public static IEnumerable<QuantizedMatmulBenchResult> Run(KernelBenchOptions options, Action<string>? log = null)
    {
        NativeKernels.EnsureAvailable();
        NativeKernels.Threads = options.Threads ?? 0;
        if (!NativeKernels.TryForceIsa(options.Isa))
            throw new EngineException($"this CPU (or this build of the native library) has no {options.Isa} kernels");
        long size = options.QmatmulSize;
        foreach (string formatName in options.QmatmulFormats)
        {
            var format = QuantFormats.Parse(formatName);
            using var scope = NewDisposeScope();
            var weight = (randn(size, size, generator: new TorchSharp.torch.Generator(1)) * 0.02f).to(ScalarType.BFloat16);
            using var q = QuantizedWeight.Quantize(weight, format);
            // The baseline multiplies the same (dequantized) weight in bf16.
            var w16 = q.Dequantize(ScalarType.BFloat16);
            foreach (long rows in options.QmatmulRows)
            {
                log?.Invoke($"qmatmul {rows} x {size} x {size} {format.Name()} ...");
                yield return RunCase(rows, size, q, w16, options.Repeat);
            }
        }
    }

    static QuantizedMatmulBenchResult RunCase(long rows, long size, QuantizedWeight q, Tensor w16, int repeat)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var g = new TorchSharp.torch.Generator(2);
        var x = randn(new[] { rows, size }, generator: g).to(ScalarType.BFloat16);
        var dy = randn(new[] { rows, size }, generator: g).to(ScalarType.BFloat16);
        var wt = w16.t();
        var fwd = KernelBenchmark.TimeAlternating(repeat, () => x.matmul(wt).Dispose(), () => QuantizedMatmul.Forward(x, q).Dispose());
        var bwd = KernelBenchmark.TimeAlternating(repeat, () => dy.matmul(w16).Dispose(), () => QuantizedMatmul.InputGradient(dy, q).Dispose());
        return new QuantizedMatmulBenchResult
        {
            Rows = rows,
            OutFeatures = size,
            InFeatures = size,
            Format = q.Format.Name(),
            Threads = NativeKernels.Threads,
            Isa = NativeKernels.IsaName,
            Bf16Dot = NativeKernels.IsaName == "avx512" && QuantizedNative.Bf16DotAvailable,
            Bf16MatmulMs = fwd.A.Median,
            QmatmulMs = fwd.B.Median,
            Bf16InputGradMs = bwd.A.Median,
            QmatmulInputGradMs = bwd.B.Median,
            WeightBytes = q.Bytes,
            Repeat = repeat,
            MinMedianMax = new Dictionary<string, double[]>
            {
                ["bf16_matmul"] = fwd.A.ToArray(),
                ["qmatmul"] = fwd.B.ToArray(),
                ["forward_rate_ratio_pairs"] = fwd.Ratio.ToArray(),
                ["bf16_input_grad"] = bwd.A.ToArray(),
                ["qmatmul_input_grad"] = bwd.B.ToArray(),
                ["input_grad_rate_ratio_pairs"] = bwd.Ratio.ToArray(),
            },
        };
    }
}
