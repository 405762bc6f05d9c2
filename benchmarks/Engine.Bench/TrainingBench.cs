using System.Diagnostics;
using Engine.Data;
using Engine.Distributed;
using Engine.Kernels;
using Engine.Methods;
using Engine.Models;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Bench;

/// <summary>One configuration's throughput: spreads over the timed steps, the matmul rate (in the step's dtype) timed between them, and
/// the ratio of medians (achieved 6N FLOP/s over the matmul rate, N = <see cref="MatmulParameters"/>: the weights of the
/// decoder's linear layers and the LM head, not the embedding lookup or the norms). Attention's own products (q·kᵀ and
/// p·v, causal) are not in 6N: <see cref="AttentionFlopsPerToken"/> states them, and <see cref="AchievedGflopsWithAttention"/> adds them. With N ranks: tokens/s over all of them
/// (MicroBatch is per rank), torch threads per process, and rank 0's seconds per step from the end of backward until
/// the gradient sums are in (the all-reduce not hidden by backward, plus waiting for the slower rank).</summary>
public sealed record TrainingBenchResult(string Method, string ReferenceMode, string Model, int MicroBatch, int SeqLen, int Steps,
    Spread TokensPerSecond, Spread StepSeconds, Spread MatmulGflops, double AchievedGflops, long PeakRssBytes, long ModelBytes,
    int Ranks = 1, int Threads = 0, double AllReduceSecondsPerStep = 0, int GradientBuckets = 0, int BucketsStartedInBackward = 0,
    IReadOnlyDictionary<string, double>? Profile = null, long MatmulParameters = 0, double AttentionFlopsPerToken = 0)
{
    public double RatioToMatmul => AchievedGflops / MatmulGflops.Median;
    public double AchievedGflopsWithAttention => AchievedGflops + AttentionFlopsPerToken * TokensPerSecond.Median / 1e9;

    /// <summary>Parameters that take part in a matmul per token: every decoder linear and the LM head (tied or not).</summary>
    public static long MatmulParametersOf(LlamaConfig c) =>
        (long)c.NumLayers * (2L * c.HiddenSize * c.QueryDim + 2L * c.HiddenSize * c.KvDim + 3L * c.HiddenSize * c.IntermediateSize)
        + (long)c.VocabSize * c.HiddenSize;

    /// <summary>q·kᵀ and p·v over the causal half of a length-T sequence, forward and backward (3×): 3 · 2 · 2 · L · Q · T / 2.</summary>
    public static double AttentionFlopsPerTokenOf(LlamaConfig c, int seqLen) => 6.0 * c.NumLayers * c.QueryDim * seqLen;
}

/// <summary>
/// Training throughput of a method on a random-weight preset, through <see cref="TrainingSession"/> (the code `train`
/// runs) on random-token batches with the prompt and the completion each half of the sequence: tokens/s over the timed
/// steps (the first step is a warm-up), the process's peak RSS (VmHWM), and the matmul rate measured in the same
/// process. Run each configuration in its own process so peak RSS is its own. With more than one rank every rank trains
/// its own micro-batch (the global batch grows with the ranks, as in data-parallel scaling runs) and the gradients are
/// summed over ranks each step; tokens/s counts every rank's tokens, and the matmul rate and peak RSS are rank 0's.
/// </summary>
public static class TrainingBench
{
    /// <param name="profile">split the timed steps by op class (<see cref="StepProfiler"/>): ms per step per class</param>
    public static TrainingBenchResult Run(StepSettings step, int steps, ICommunicator? ranks = null, bool profile = false)
    {
        ranks ??= SingleProcess.Instance;
        var config = ModelPresets.Get(step.Model);
        int prompt = step.MaxLength / 2;
        var shape = new SyntheticShape(step.MicroBatch, prompt, step.MaxLength - prompt, config.VocabSize, config.BosTokenId ?? 1, Batches: steps + 1, Seed: 3);
        var options = new TrainingOptions { Step = step, Seed = 7, SaveFinal = false, Plots = false };
        using var session = TrainingSession.Open(options, new SessionData.Synthetic(shape), SilentObserver.Instance, ranks: ranks);
        using var batches = session.Train.Batches(1, DataPosition.Start).GetEnumerator();
        session.TrainStep(batches, gradAccum: 1, learningRate: 1e-5); // warm-up
        var seconds = new List<double>();
        var tokensPerSecond = new List<double>();
        var matmul = new List<double>();
        double communication = 0;
        var profiled = new Dictionary<string, double>();
        for (int i = 0; i < steps; i++)
        {
            var profiler = profile ? StepProfiler.Start() : null;
            var clock = Stopwatch.StartNew();
            var outcome = session.TrainStep(batches, gradAccum: 1, learningRate: 1e-5)!;
            seconds.Add(clock.Elapsed.TotalSeconds);
            profiler?.Stop();
            if (profiler != null) foreach (var (name, ms) in profiler.Milliseconds) profiled[name] = profiled.GetValueOrDefault(name) + ms;
            tokensPerSecond.Add(outcome.Tokens / seconds[^1]);
            communication += session.Gradients?.FinishSeconds ?? 0;
            // Timed between steps, so the ratio compares figures measured under the same load.
            // (In the step's compute dtype: bf16 steps against the bf16 rate.)
            matmul.Add(MatmulRate.Measure(step.Dtype, seconds: 0.25) / 1e9);
        }
        var tokens = Spread.Of(tokensPerSecond);
        // Forward+backward of the policy: 6·N per token over the matmul parameters.
        long matmulParameters = TrainingBenchResult.MatmulParametersOf(config);
        double flopsPerToken = 6.0 * matmulParameters;
        return new TrainingBenchResult(step.Method.Name, Util.Spelling.Of(step.Reference), step.Model, step.MicroBatch, step.MaxLength, steps,
            tokens, Spread.Of(seconds), Spread.Of(matmul), flopsPerToken * tokens.Median / 1e9, PeakRss(), config.ParameterCount() * 4,
            ranks.Size, get_num_threads(), communication / steps, session.Gradients?.Count ?? 0, session.Gradients?.StartedDuringBackward ?? 0,
            profile ? profiled.ToDictionary(kv => kv.Key, kv => kv.Value / steps) : null, matmulParameters,
            TrainingBenchResult.AttentionFlopsPerTokenOf(config, step.MaxLength));
    }

    /// <summary>Peak resident set size of this process (Linux VmHWM), 0 where unavailable.</summary>
    public static long PeakRss()
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:"));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (IOException) { return 0; }
    }
}
