using System.Diagnostics;
using Engine.Data;
using Engine.Methods;
using Engine.Models;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Bench;

/// <summary>One configuration's throughput: spreads over the timed steps, the f32 matmul rate timed between them, and
/// the ratio of medians (achieved 6N FLOP/s over the matmul rate).</summary>
public sealed record TrainingBenchResult(string Method, string ReferenceMode, string Model, int MicroBatch, int SeqLen, int Steps,
    Spread TokensPerSecond, Spread StepSeconds, Spread MatmulGflops, double AchievedGflops, long PeakRssBytes, long ModelBytes)
{
    public double RatioToMatmul => AchievedGflops / MatmulGflops.Median;
}

/// <summary>
/// Training throughput of a method on a random-weight preset, through <see cref="TrainingSession"/> (the code `train`
/// runs) on random-token batches with the prompt and the completion each half of the sequence: tokens/s over the timed
/// steps (the first step is a warm-up), the process's peak RSS (VmHWM), and the matmul rate measured in the same
/// process. Run each configuration in its own process so peak RSS is its own.
/// </summary>
public static class TrainingBench
{
    public static TrainingBenchResult Run(StepSettings step, int steps)
    {
        var config = ModelPresets.Get(step.Model);
        int prompt = step.MaxLength / 2;
        var shape = new SyntheticShape(step.MicroBatch, prompt, step.MaxLength - prompt, config.VocabSize, config.BosTokenId ?? 1, Batches: steps + 1, Seed: 3);
        var options = new TrainingOptions { Step = step, Seed = 7, SaveFinal = false, Plots = false };
        using var session = TrainingSession.Open(options, new SessionData.Synthetic(shape), SilentObserver.Instance);
        using var batches = session.Train.Batches(1, DataPosition.Start).GetEnumerator();
        session.TrainStep(batches, gradAccum: 1, learningRate: 1e-5); // warm-up
        var seconds = new List<double>();
        var tokensPerSecond = new List<double>();
        var matmul = new List<double>();
        for (int i = 0; i < steps; i++)
        {
            var clock = Stopwatch.StartNew();
            var outcome = session.TrainStep(batches, gradAccum: 1, learningRate: 1e-5)!;
            seconds.Add(clock.Elapsed.TotalSeconds);
            tokensPerSecond.Add(outcome.Tokens / seconds[^1]);
            // Timed between steps, so the ratio compares figures measured under the same load.
            matmul.Add(MatmulRate.Measure(ScalarType.Float32, seconds: 0.25) / 1e9);
        }
        var tokens = Spread.Of(tokensPerSecond);
        // Forward+backward of the policy: 6·N per token.
        double flopsPerToken = 6.0 * config.ParameterCount();
        return new TrainingBenchResult(step.Method.Name, Util.Spelling.Of(step.Reference), step.Model, step.MicroBatch, step.MaxLength, steps,
            tokens, Spread.Of(seconds), Spread.Of(matmul), flopsPerToken * tokens.Median / 1e9, PeakRss(), config.ParameterCount() * 4);
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
