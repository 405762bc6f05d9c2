using System.Text.Json.Nodes;
using Engine.Kernels;
using Engine.Methods;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tests.Models;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Tests.Training;

/// <summary>
/// Short DPO and KTO runs on each family's small random-weight model (<see cref="FamilyModels"/>): they train, save in
/// HF layout with the family's config keys and reload; the three log-prob heads give the same losses (tied and untied
/// heads alike), activation checkpointing changes nothing, and bf16 with checkpointing trains.
/// </summary>
public class FamilyTrainingTests
{
    public static TheoryData<string> Families => new(FamilyModels.All);

    static TrainingOptions Options(FamilyModel m, string method, string data, string outDir) => new()
    {
        Step = new StepSettings { Method = AlignmentMethods.Parse(method), Model = m.Directory, MicroBatch = 4, MaxLength = 64 },
        DataPath = data, OutputDir = outDir, MaxSteps = 2, LearningRate = 1e-3, LrScheduler = LrSchedulerKind.Constant, Seed = 5, Plots = false,
    };

    static TrainingOptions With(TrainingOptions o, Func<StepSettings, StepSettings> step) => o with { Step = step(o.Step) };

    static double[] Losses(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
        .Select(l => JsonNode.Parse(l)!.AsObject()).Where(r => r.ContainsKey("loss")).Select(r => r["loss"]!.GetValue<double>()).ToArray();

    static float[] Weights(LlamaForCausalLM model, string name)
    {
        using var t = model.named_parameters().First(p => p.name == name).parameter.detach().to(ScalarType.Float32).contiguous();
        return t.data<float>().ToArray();
    }

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void DpoAndKtoTrainSaveAndReload(string family)
    {
        var m = FamilyModels.Get(family);
        using var dir = new TempDir();
        var pairs = StoryPreferences.Pairs(8, seed: 21);
        using var original = FamilyModels.LoadModel(m.Directory);
        foreach (var (method, data) in new[]
        {
            ("dpo", StoryPreferences.WritePaired(dir.File("pairs.jsonl"), pairs)),
            ("kto", StoryPreferences.WriteUnpaired(dir.File("unpaired.jsonl"), pairs)),
        })
        {
            var summary = new AlignmentTrainer(Options(m, method, data, dir.File(method))).Run();
            var losses = Losses(summary.OutputDir);
            Assert.Equal(2, losses.Length);
            Assert.All(losses, l => Assert.True(double.IsFinite(l), $"{family} {method}: loss {l}"));

            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(summary.FinalModelDir!, "config.json")))!.AsObject();
            Assert.Equal(JsonNode.Parse(File.ReadAllText(m.ConfigPath))!["model_type"]!.GetValue<string>(), config["model_type"]!.GetValue<string>());
            using var trained = ModelLoader.Load(summary.FinalModelDir!, requireTokenizer: true);
            Assert.Equal(m.Spec, trained.Config);
            // The run moved the weights, and the saved ones are what the loader reads back.
            Assert.NotEqual(Weights(original, "model.layers.0.mlp.up_proj.weight"), Weights(trained.Model, "model.layers.0.mlp.up_proj.weight"));
            using var _ = no_grad();
            using var logits = trained.Model.Forward(tensor(m.Prompt.Take(8).Select(i => (long)i).ToArray(), new long[] { 1, 8 }));
            Assert.False(logits.isnan().any().item<bool>());
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void HeadsCheckpointingAndBf16AgreeOnTheLosses(string family)
    {
        var m = FamilyModels.Get(family);
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("pairs.jsonl"), StoryPreferences.Pairs(8, seed: 22));
        TrainingOptions Run(string name) => Options(m, "dpo", data, dir.File(name)) with { SaveFinal = false };
        double[] Train(TrainingOptions o) { new AlignmentTrainer(o).Run(); return Losses(o.OutputDir); }

        var naive = Train(With(Run("naive"), s => s with { Head = LogProbMode.Naive }));
        // Step 1 is ln 2 whatever the head (policy = reference); step 2 shows the first update, so the gradients.
        Assert.True(Math.Abs(naive[1] - naive[0]) > 1e-4, $"{family}: the first update did not move the loss ({naive[0]} → {naive[1]})");
        foreach (var (name, options) in new[]
        {
            ("fused", With(Run("fused"), s => s with { Head = LogProbMode.Fused })),
            ("chunked", With(Run("chunked"), s => s with { Head = LogProbMode.Chunked })),
            ("fused + checkpointing", With(Run("ckpt"), s => s with { Head = LogProbMode.Fused, ActivationCheckpointing = true })),
        })
        {
            var losses = Train(options);
            Assert.Equal(naive.Length, losses.Length);
            for (int i = 0; i < naive.Length; i++)
                Assert.True(Math.Abs(naive[i] - losses[i]) <= 1e-5, $"{family} {name} step {i + 1}: {losses[i]} vs naive {naive[i]}");
        }
        // bf16 rounds every matmul to 8 significant bits: the losses stay close to f32's (DPO starts at ln 2).
        var bf16 = Train(With(Run("bf16"), s => s with { Precision = Precision.Bf16Mixed, ActivationCheckpointing = true, Head = LogProbMode.Chunked }));
        for (int i = 0; i < naive.Length; i++)
            Assert.True(Math.Abs(naive[i] - bf16[i]) <= 0.05, $"{family} bf16 step {i + 1}: {bf16[i]} vs f32 {naive[i]}");
    }
}
