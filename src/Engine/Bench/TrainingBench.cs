using System.Text.Json;
using Engine.Demo;
using Engine.Models;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Bench;

public sealed record TrainingBenchResult(string Method, string ReferenceMode, string Model, int MicroBatch, int SeqLen, int Steps,
    double TokensPerSecond, double StepSeconds, double MatmulGflops, double AchievedGflops, long PeakRssBytes, long ModelBytes);

/// <summary>
/// Training throughput of DPO or KTO on a random-weight preset with synthetic preference data, in this process:
/// tokens/s over the timed steps (the first step is a warm-up), the process's peak RSS (VmHWM), and the matmul
/// rate measured in the same process. Run each configuration in its own process so peak RSS is its own.
/// </summary>
public static class TrainingBench
{
    public static TrainingBenchResult Run(string method, ReferenceMode referenceMode, string preset, int microBatch, int seqLen, int steps, string workDir)
    {
        Directory.CreateDirectory(workDir);
        var config = ModelPresets.Get(preset);
        string modelDir = Path.Combine(workDir, "model");
        // Any tokenizer whose ids fit the vocabulary will do: the character-level demo tokenizer keeps the text→length map simple.
        var tokenizer = DemoTokenizer.Create(StoryCorpus.Alphabet());
        using (var model = new LlamaForCausalLM(config))
        {
            model.InitializeWeights(7);
            ModelLoader.Save(model, tokenizer, modelDir, ScalarType.Float32, replace: true);
        }
        string data = Path.Combine(workDir, $"{method}.jsonl");
        WriteData(data, method, rows: microBatch * (steps + 1), promptChars: seqLen / 2 - 2, completionChars: seqLen / 2 - 2);

        var observer = new StepTimes();
        new AlignmentTrainer(new TrainingOptions
        {
            Method = method, ModelPath = modelDir, DataPath = data, OutputDir = Path.Combine(workDir, "run-" + method + "-" + referenceMode),
            BatchSize = microBatch, MaxSteps = steps + 1, LearningRate = 1e-5, ReferenceMode = referenceMode, SaveFinal = false, Plots = false,
            MaxLength = seqLen + 8, LrScheduler = LrSchedulerKind.Constant,
        }, observer).Run();
        var timed = observer.Steps.Skip(1).ToList();
        double seconds = timed.Sum(s => s.Seconds);
        long tokens = timed.Sum(s => s.Tokens);
        double mm = MatmulRate.Measure(ScalarType.Float32);
        // Forward+backward of the policy: 6·N per token; KTO's mismatched forward (no grad) adds 2·N per token of it.
        double flopsPerToken = 6.0 * config.ParameterCount();
        return new TrainingBenchResult(method, referenceMode.ToString().ToLowerInvariant(), preset, microBatch, seqLen, timed.Count,
            tokens / seconds, seconds / timed.Count, mm / 1e9, flopsPerToken * tokens / seconds / 1e9, PeakRss(), config.ParameterCount() * 4);
    }

    static void WriteData(string path, string method, int rows, int promptChars, int completionChars)
    {
        var r = new Random(3);
        string Text(int n) => new string(Enumerable.Range(0, n).Select(_ => (char)('a' + r.Next(26))).ToArray());
        var lines = new List<string>();
        for (int i = 0; i < rows; i++)
        {
            string prompt = Text(promptChars);
            lines.Add(method == "kto"
                ? JsonSerializer.Serialize(new { prompt, completion = Text(completionChars), label = i % 2 == 0 })
                : JsonSerializer.Serialize(new { prompt, chosen = Text(completionChars), rejected = Text(completionChars) }));
        }
        File.WriteAllLines(path, lines);
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

    sealed class StepTimes : ITrainingObserver
    {
        public List<(double Seconds, long Tokens)> Steps { get; } = new();
        TimeSpan _last;
        public void Notice(string message) { }
        public void Started(TrainingPlan plan) { }
        public void Step(StepReport report)
        {
            double seconds = (report.Elapsed - _last).TotalSeconds;
            _last = report.Elapsed;
            Steps.Add((seconds, (long)Math.Round(report.Values["tokens_per_second"] * seconds)));
        }
        public void Evaluated(int step, IReadOnlyDictionary<string, double> metrics) { }
        public void Finished(TrainingSummary summary) { }
    }
}
