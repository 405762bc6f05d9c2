using System.Text.Json.Nodes;
using Engine.Adapters;
using Engine.Methods;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Tests.Adapters;

/// <summary>LoRA runs on stories260K with the story preference set: learning, PEFT outputs, the frozen base, resume.</summary>
public class LoraTrainingTests
{
    static readonly LoraSettings Lora = new() { Enabled = true, Rank = 8, Alpha = 16, Dropout = 0, TargetModules = new[] { LoraSettings.AllLinear } };

    static TrainingOptions Options(TempDir dir, string data, string? eval = null, LoraSettings? lora = null) => new()
    {
        Step = new StepSettings { Method = AlignmentMethods.Dpo, Model = SharedData.Require(SharedData.Stories), MicroBatch = 8, Lora = lora ?? Lora },
        DataPath = data, EvalDataPath = eval, OutputDir = dir.File("run"), LearningRate = 1e-2, Epochs = 2, Seed = 3, Plots = false,
    };

    [SkippableFact]
    public void LoraDpoLiftsHeldOutAccuracyAndWritesAPeftAdapter()
    {
        using var dir = new TempDir();
        var pairs = StoryPreferences.Pairs(64, seed: 11);
        string train = StoryPreferences.WritePaired(dir.File("train.jsonl"), pairs.Take(48));
        string eval = StoryPreferences.WritePaired(dir.File("eval.jsonl"), pairs.Skip(48));
        var summary = new AlignmentTrainer(Options(dir, train, eval) with { SaveSteps = 6 }).Run();
        Assert.True(summary.LastEval!["rewards/accuracies"] >= 0.9, $"held-out accuracy {summary.LastEval["rewards/accuracies"]}");

        foreach (var folder in new[] { summary.FinalModelDir!, Path.Combine(summary.OutputDir, "checkpoint-6") })
        {
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "adapter_config.json")))!.AsObject();
            Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
            Assert.Equal(8, config["r"]!.GetValue<int>());
            Assert.Equal(16.0, config["lora_alpha"]!.GetValue<double>());
            Assert.Equal(7, config["target_modules"]!.AsArray().Count);
            Assert.False(Directory.Exists(Path.Combine(folder, "model")));
            using var weights = SafetensorsFile.Open(Path.Combine(folder, "adapter_model.safetensors"));
            Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", weights.Entries.Keys);
            Assert.Contains("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", weights.Entries.Keys);
            Assert.All(weights.Entries.Keys, k => Assert.Matches(@"^base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.weight$", k));
        }

        // The adapter reloads onto the base and reproduces the trained model's held-out metrics; the base itself is untouched.
        var reloaded = ModelEvaluation.Run(new EvaluationOptions
        {
            Step = new StepSettings { Method = AlignmentMethods.Dpo, Model = SharedData.Require(SharedData.Stories), MicroBatch = 8 },
            Adapter = summary.FinalModelDir, DataPath = eval, Seed = 3,
        });
        Assert.Equal(summary.LastEval["rewards/accuracies"], reloaded["rewards/accuracies"], 6);
        Assert.Equal(summary.LastEval["rewards/margins"], reloaded["rewards/margins"], 4);
    }

    [SkippableFact]
    public void OnlyTheAdaptersTrainAndTheReferenceIsTheBase()
    {
        using var dir = new TempDir();
        string train = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(16, seed: 5));
        var o = Options(dir, train) with { Step = Options(dir, train).Step with { MicroBatch = 4, Reference = ReferenceMode.Resident } };
        using var session = TrainingSession.Open(o, new SessionData.Files(), new SilentObserver());
        Assert.IsType<AdapterOffReference>(session.Reference);
        Assert.Equal(session.Adapters!.NamedParameters().Select(p => p.Name), session.Optimizer.Slots.Select(s => s.Name));
        var before = session.Policy.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        using var batches = session.Train.Batches(1, Engine.Data.DataPosition.Start).GetEnumerator();
        var first = session.TrainStep(batches, 1, 1e-2)!;
        // Step 0: policy = base = reference, so DPO's loss is exactly log 2.
        Assert.Equal(Math.Log(2), first.Loss, 5);
        session.TrainStep(batches, 1, 1e-2);
        Assert.All(session.Policy.named_parameters(), p => Assert.True((p.parameter - before[p.name]).abs().max().item<float>() == 0, $"{p.name} changed"));
        Assert.All(session.Adapters.Layers, l => Assert.True(l.Layer.B.abs().max().item<float>() > 0));
    }

    [SkippableFact]
    public void ResumeContinuesLossByLoss()
    {
        using var dir = new TempDir();
        string train = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(40, seed: 13));
        var dpo = Options(dir, train);
        var straight = dpo with { Step = dpo.Step with { MicroBatch = 4 }, OutputDir = dir.File("straight"), MaxSteps = 8, LrScheduler = LrSchedulerKind.Constant, LearningRate = 5e-3 };
        new AlignmentTrainer(straight).Run();
        var first = straight with { OutputDir = dir.File("resumed"), MaxSteps = 4, SaveSteps = 4 };
        new AlignmentTrainer(first).Run();
        new AlignmentTrainer(first with { MaxSteps = 8, ResumeFrom = Path.Combine(dir.File("resumed"), "checkpoint-4") }).Run();

        double[] Losses(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(r => r.ContainsKey("loss") && !r.ContainsKey("eval_loss")).Select(r => r["loss"]!.GetValue<double>()).ToArray();
        var a = Losses(dir.File("straight"));
        var b = Losses(dir.File("resumed"));
        Assert.Equal(8, a.Length);
        Assert.Equal(8, b.Length);
        for (int i = 0; i < 8; i++) Assert.True(Math.Abs(a[i] - b[i]) < 1e-6, $"step {i + 1}: {a[i]} vs {b[i]}");
        Assert.True(Math.Abs(a[7] - a[0]) > 1e-3, "the adapters did not train");
    }
}
