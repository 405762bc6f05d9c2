using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Engine.Data;
using Engine.Kernels;
using Engine.Models;
using Engine.Methods;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Benchmarks.Memory;

/// <summary>
/// The compute side of the memory knobs, in one run: a policy forward + backward of a DPO microbatch (4 pairs × 256
/// tokens on bench-25m, fused head) in f32 and bf16, with and without activation checkpointing. Read the ratios:
/// checkpointing's overhead (on ÷ off, target ≤ 1.4) and bf16's speed-up (f32 ÷ bf16, target ≥ 1.5). The memory
/// side comes from `engine plan --measure` (docs/memory.md).
/// </summary>
[Config(typeof(Config))]
public class TrainingStepBenchmarks
{
    sealed class Config : BenchmarkDotNet.Configs.ManualConfig
    {
        public Config() => AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance).WithIterationCount(5).WithWarmupCount(1));
    }

    [Params("f32", "bf16")]
    public string Precision = "f32";

    [Params(false, true)]
    public bool Checkpointing;

    LlamaForCausalLM _model = null!;
    SequenceBatch _batch = null!;

    [GlobalSetup]
    public void Setup()
    {
        var config = ModelPresets.Get("bench-25m");
        _model = new LlamaForCausalLM(config);
        _model.InitializeWeights(1);
        _model.ConvertTo(Precision == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32);
        if (Checkpointing) ActivationCheckpointing.Enable(_model);
        var rng = new Random(7);
        var rows = Enumerable.Range(0, 8).Select(_ => (new[] { 1 }, Enumerable.Range(0, 255).Select(_ => rng.Next(3, config.VocabSize)).ToArray())).ToList();
        _batch = SequenceBatch.Build(rows, 0);
    }

    [Benchmark(Description = "bench-25m DPO microstep fwd+bwd (8x256, fused head)")]
    public void Step()
    {
        using var scope = NewDisposeScope();
        var scores = SequenceScorer.Score(_model, _batch, LogProbMode.Fused);
        (-scores.LogpSum.mean()).backward();
        foreach (var p in _model.parameters()) p.grad?.zero_();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _batch.Dispose();
        _model.Dispose();
    }
}
