using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Engine.Kernels;
using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Benchmarks.Models;

/// <summary>
/// Forward+backward of bench-25m (batch 4 × seq 256) in f32 and bf16, beside a 1024³ matmul in the same
/// dtypes, so the ratio achieved-FLOP/s ÷ matmul-FLOP/s can be read off one run.
/// </summary>
[Config(typeof(Config))]
public class ForwardBackwardBenchmarks
{
    sealed class Config : BenchmarkDotNet.Configs.ManualConfig
    {
        public Config() => AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithIterationCount(3).WithWarmupCount(1));
    }

    [Params(ScalarType.Float32, ScalarType.BFloat16)]
    public ScalarType Dtype;

    LlamaForCausalLM _model = null!;
    Tensor _ids = null!, _a = null!, _b = null!;

    [GlobalSetup]
    public void Setup()
    {
        _model = new LlamaForCausalLM(ModelPresets.Get("bench-25m"), Dtype);
        _model.InitializeWeights(1);
        _ids = randint(0, 32000, new long[] { 4, 256 }, generator: new Generator(7));
        _a = randn(1024, 1024).to(Dtype);
        _b = randn(1024, 1024).to(Dtype);
    }

    [Benchmark(Description = "matmul 1024^3")]
    public void Matmul()
    {
        using var _ = no_grad();
        mm(_a, _b).Dispose();
    }

    [Benchmark(Description = "bench-25m fwd+bwd 4x256")]
    public void ForwardBackward()
    {
        using var scope = NewDisposeScope();
        var hidden = _model.ForwardHidden(_ids);
        var h = hidden.narrow(1, 0, 255).reshape(-1, 512);
        var labels = _ids.narrow(1, 1, 255).reshape(-1);
        using var lp = TokenLogProbs.FromHidden(h, _model.LmHeadWeight, labels, LogProbMode.Naive);
        (-lp.LogProbs.mean()).backward();
        foreach (var p in _model.parameters()) p.grad?.zero_();
    }
}
