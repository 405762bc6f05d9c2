using System.Diagnostics;
using Engine.Data;
using Engine.Kernels;
using Engine.Methods;
using Engine.Models;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Bench;

public sealed record TrainingBenchResult(string Method, string ReferenceMode, string Model, int MicroBatch, int SeqLen, int Steps,
    double TokensPerSecond, double StepSeconds, double MatmulGflops, double AchievedGflops, long PeakRssBytes, long ModelBytes,
    IReadOnlyDictionary<string, double>? Profile = null)
{
    /// <summary>Achieved 6N FLOP rate over the matmul rate of the step's own dtype, measured in the same process.</summary>
    public double MatmulFraction => AchievedGflops / MatmulGflops;
}

/// <summary>
/// Training throughput of a method on a random-weight preset, through <see cref="TrainingSession"/> (the code `train`
/// runs) on random-token batches with the prompt and the completion each half of the sequence: tokens/s over the timed
/// steps (the first step is a warm-up), the process's peak RSS (VmHWM), and the matmul rate measured in the same
/// process. Run each configuration in its own process so peak RSS is its own.
/// </summary>
public static class TrainingBench
{
    /// <param name="profile">split the timed steps by op class (<see cref="StepProfiler"/>): ms per step per class</param>
    public static TrainingBenchResult Run(StepSettings step, int steps, bool profile = false)
    {
        var config = ModelPresets.Get(step.Model);
        int prompt = step.MaxLength / 2;
        var shape = new SyntheticShape(step.MicroBatch, prompt, step.MaxLength - prompt, config.VocabSize, config.BosTokenId ?? 1, Batches: steps + 1, Seed: 3);
        var options = new TrainingOptions { Step = step, Seed = 7, SaveFinal = false, Plots = false };
        using var session = TrainingSession.Open(options, new SessionData.Synthetic(shape), SilentObserver.Instance);
        using var batches = session.Train.Batches(1, DataPosition.Start).GetEnumerator();
        session.TrainStep(batches, gradAccum: 1, learningRate: 1e-5); // warm-up
        double seconds = 0;
        long tokens = 0;
        var profiler = profile ? StepProfiler.Start() : null;
        for (int i = 0; i < steps; i++)
        {
            var clock = Stopwatch.StartNew();
            var outcome = session.TrainStep(batches, gradAccum: 1, learningRate: 1e-5)!;
            seconds += clock.Elapsed.TotalSeconds;
            tokens += outcome.Tokens;
        }
        profiler?.Stop();
        // The matmul rate of the step's compute dtype (bf16 steps against the bf16 rate).
        double mm = MatmulRate.Measure(step.Dtype);
        // Forward+backward of the policy: 6·N per token.
        double flopsPerToken = 6.0 * config.ParameterCount();
        return new TrainingBenchResult(step.Method.Name, Util.Spelling.Of(step.Reference), step.Model, step.MicroBatch, step.MaxLength, steps,
            tokens / seconds, seconds / steps, mm / 1e9, flopsPerToken * tokens / seconds / 1e9, PeakRss(), config.ParameterCount() * 4,
            profiler?.Milliseconds.ToDictionary(kv => kv.Key, kv => kv.Value / steps));
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
