using System.Text.Json.Nodes;
using Engine.Kernels;
using Engine.Methods;
using Engine.Tests.Infrastructure;
using Engine.Training;

namespace Engine.Tests.Training;

/// <summary>Training with the fused or chunked head gives the naive path's losses, step by step, for every objective.</summary>
public class LogProbModeTrainingTests
{
    static double[] Losses(TempDir dir, string method, LogProbMode mode, string data)
    {
        string run = dir.File($"{method}-{mode}");
        new AlignmentTrainer(new TrainingOptions
        {
            Step = new StepSettings { Method = AlignmentMethods.Parse(method), Model = SharedData.Require(SharedData.Stories), Head = mode, MicroBatch = 4 },
            DataPath = data, OutputDir = run, MaxSteps = 3, LearningRate = 1e-3, Seed = 5, SaveFinal = false, Plots = false,
        }).Run();
        return File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"]!.GetValue<double>()).ToArray();
    }

    [SkippableTheory]
    [InlineData("dpo")]
    [InlineData("kto")]
    [InlineData("sft")]
    [InlineData("orpo")]
    [InlineData("simpo")]
    public void FusedAndChunkedLossesEqualNaive(string method)
    {
        using var dir = new TempDir();
        var pairs = StoryPreferences.Pairs(12, seed: 41);
        string data = method is "kto" or "sft" ? StoryPreferences.WriteUnpaired(dir.File("d.jsonl"), pairs) : StoryPreferences.WritePaired(dir.File("d.jsonl"), pairs);
        var naive = Losses(dir, method, LogProbMode.Naive, data);
        foreach (var mode in new[] { LogProbMode.Fused, LogProbMode.Chunked })
        {
            var other = Losses(dir, method, mode, data);
            Assert.Equal(naive.Length, other.Length);
            for (int i = 0; i < naive.Length; i++)
                Assert.True(Math.Abs(naive[i] - other[i]) <= 1e-5, $"{method} {mode} step {i + 1}: {other[i]} vs naive {naive[i]}");
        }
    }
}
