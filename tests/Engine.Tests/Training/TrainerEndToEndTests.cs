using System.Text.Json.Nodes;
using Engine.Generation;
using Engine.Methods;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Training;

namespace Engine.Tests.Training;

/// <summary>Short real runs on stories260K with the story preference set (the issue's "Show" list).</summary>
public class TrainerEndToEndTests
{
    static TrainingOptions Options(TempDir dir, string method, string data, string? eval = null) => new()
    {
        Step = new StepSettings { Method = AlignmentMethods.Parse(method), Model = SharedData.Require(SharedData.Stories), MicroBatch = 8 },
        DataPath = data, EvalDataPath = eval, OutputDir = dir.File("run"), LearningRate = 1e-3, Epochs = 2, Seed = 3, Plots = false,
    };

    /// <summary>DPO metrics of a model against stories260K as the reference.</summary>
    static IReadOnlyDictionary<string, double> EvalAgainstStories(string model, string data) => ModelEvaluation.Run(new EvaluationOptions
    {
        Step = new StepSettings { Method = AlignmentMethods.Dpo, Model = model, ReferenceModel = SharedData.Require(SharedData.Stories), MicroBatch = 8 },
        DataPath = data, Seed = 3,
    });

    [SkippableFact]
    public void DpoLiftsHeldOutAccuracyAndTheModelReloads()
    {
        using var dir = new TempDir();
        var pairs = StoryPreferences.Pairs(64, seed: 11);
        string train = StoryPreferences.WritePaired(dir.File("train.jsonl"), pairs.Take(48));
        string eval = StoryPreferences.WritePaired(dir.File("eval.jsonl"), pairs.Skip(48));
        var before = EvalAgainstStories(SharedData.Require(SharedData.Stories), eval);
        Assert.Equal(0.0, before["rewards/margins"], 6); // policy = reference: zero margin before training

        var summary = new AlignmentTrainer(Options(dir, "dpo", train, eval)).Run();
        Assert.True(summary.LastEval!["rewards/accuracies"] > 0.9, $"held-out accuracy {summary.LastEval["rewards/accuracies"]}");

        using var reloaded = ModelLoader.Load(summary.FinalModelDir!, requireTokenizer: true);
        var tok = reloaded.RequireTokenizer();
        var ids = new TextGenerator(reloaded.Model, tok.EosId).Generate(new[] { tok.Encode("Once upon a time") }, new SamplingOptions { MaxNewTokens = 12, Temperature = 0 })[0];
        Assert.NotEmpty(tok.Decode(ids).Trim());
        var rows = File.ReadAllLines(Path.Combine(summary.OutputDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Contains(rows, r => r.ContainsKey("rewards/margins") && r.ContainsKey("logps/chosen") && r.ContainsKey("logits/rejected"));
        Assert.Contains(rows, r => r.ContainsKey("eval_rewards/accuracies"));
    }

    [SkippableFact]
    public void KtoOnTheUnpairedFormRanksHeldOutPairs()
    {
        using var dir = new TempDir();
        var pairs = StoryPreferences.Pairs(64, seed: 12);
        string train = StoryPreferences.WriteUnpaired(dir.File("train.jsonl"), pairs.Take(48));
        string heldOut = StoryPreferences.WritePaired(dir.File("eval.jsonl"), pairs.Skip(48));
        var summary = new AlignmentTrainer(Options(dir, "kto", train)).Run();
        Assert.True(summary.LastTrain.ContainsKey("kl"));
        var ranked = EvalAgainstStories(summary.FinalModelDir!, heldOut);
        Assert.True(ranked["rewards/accuracies"] > 0.9, $"KTO model ranks {ranked["rewards/accuracies"]:P0} of held-out pairs correctly");
    }

    [SkippableFact]
    public void ResumeContinuesLossByLoss()
    {
        using var dir = new TempDir();
        string train = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(40, seed: 13));
        var dpo = Options(dir, "dpo", train);
        var straight = dpo with { Step = dpo.Step with { MicroBatch = 4 }, OutputDir = dir.File("straight"), MaxSteps = 10, LrScheduler = LrSchedulerKind.Constant, LearningRate = 5e-4 };
        new AlignmentTrainer(straight).Run();
        var first = straight with { OutputDir = dir.File("resumed"), MaxSteps = 5, SaveSteps = 5 };
        new AlignmentTrainer(first).Run();
        Assert.True(Directory.Exists(Path.Combine(dir.File("resumed"), "checkpoint-5")));
        new AlignmentTrainer(first with { MaxSteps = 10, ResumeFrom = Path.Combine(dir.File("resumed"), "checkpoint-5") }).Run();

        double[] Losses(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(r => r.ContainsKey("loss") && !r.ContainsKey("eval_loss")).Select(r => r["loss"]!.GetValue<double>()).ToArray();
        var a = Losses(dir.File("straight"));
        var b = Losses(dir.File("resumed"));
        Assert.Equal(10, a.Length);
        Assert.Equal(10, b.Length);
        for (int i = 0; i < 10; i++) Assert.True(Math.Abs(a[i] - b[i]) < 1e-6, $"step {i + 1}: {a[i]} vs {b[i]}");
    }
}
