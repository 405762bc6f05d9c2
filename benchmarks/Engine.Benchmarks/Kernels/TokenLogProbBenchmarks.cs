using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Engine.Kernels;
using static TorchSharp.torch;

namespace Engine.Benchmarks.Kernels;

/// <summary>
/// Fused vs TorchSharp-naive per-token log-prob on the CPU, forward + backward, with the forward alone and the
/// hardware floor (one read and one exp per logit). Run:
/// <c>dotnet run -c Release --project benchmarks/Engine.Benchmarks -- --filter '*TokenLogProb*'</c>.
/// The grid defaults to rows 1024, 4096 × vocab 32000, 32768; ENGINE_BENCH_ROWS / ENGINE_BENCH_VOCAB (comma lists)
/// select others, e.g. the full grid (8192 rows, vocab 128256: the naive path then needs ~17 GB).
/// `./engine bench kernels --json` measures the same cases plus extra memory in one process.
/// </summary>
[Config(typeof(ShortInProcess))]
public class TokenLogProbBenchmarks
{
    sealed class ShortInProcess : ManualConfig
    {
        public ShortInProcess() => AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance));
    }

    static IEnumerable<long> FromEnvironment(string name, string fallback) =>
        (Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : fallback).Split(',').Select(long.Parse);

    public static IEnumerable<long> RowsValues => FromEnvironment("ENGINE_BENCH_ROWS", "1024,4096");
    public static IEnumerable<long> VocabValues => FromEnvironment("ENGINE_BENCH_VOCAB", "32000,32768");

    [ParamsSource(nameof(RowsValues))] public long Rows;
    [ParamsSource(nameof(VocabValues))] public long Vocab;
    [Params("f32", "bf16")] public string Dtype = "f32";

    Tensor _logits = null!, _labels = null!, _gradOut = null!;

    [GlobalSetup]
    public void Setup()
    {
        var gen = new Generator(1234);
        var dtype = Dtype == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        _logits = (randn(new[] { Rows, Vocab }, generator: gen) * 2).to(dtype).requires_grad_(true);
        _labels = randint(0, Vocab, new[] { Rows }, generator: gen);
        _gradOut = randn(new[] { Rows }, generator: gen);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _logits.Dispose();
        _labels.Dispose();
        _gradOut.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void NaiveForwardBackward()
    {
        using var scope = NewDisposeScope();
        var r = TokenLogProbs.Naive(_logits, _labels);
        autograd.grad(new[] { r.LogProbs }, new[] { _logits }, new[] { _gradOut });
    }

    [Benchmark]
    public void FusedForwardBackward()
    {
        using var scope = NewDisposeScope();
        var (lp, _) = FusedLogProbFunction.Apply(_logits, _labels, inPlace: false);
        autograd.grad(new[] { lp }, new[] { _logits }, new[] { _gradOut });
    }

    [Benchmark]
    public void FusedForward()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        LogProbKernels.Forward(_logits, _labels);
    }

    [Benchmark]
    public void Floor()
    {
        using var scope = NewDisposeScope();
        LogProbKernels.FloorExpSum(_logits);
    }
}
