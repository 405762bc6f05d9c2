using System.Text.Json.Nodes;
using Engine.Adapters;
using Engine.Methods;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tests.Models;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Tests.Adapters;

/// <summary>LoRA attaches by module name, so every family's linear layers take adapters (Qwen2's biased q/k/v included).</summary>
public class LoraFamilyTests
{
    public static TheoryData<string> Families => new(FamilyModels.All);

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void AllLinearLoraTrainsEachFamilyAndReloadsAsItsMergedWeights(string family)
    {
        var m = FamilyModels.Get(family);
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("pairs.jsonl"), StoryPreferences.Pairs(8, seed: 21));
        var lora = new LoraSettings { Enabled = true, Rank = 4, Alpha = 8, Dropout = 0.1, TargetModules = new[] { LoraSettings.AllLinear } };
        var o = new TrainingOptions
        {
            Step = new StepSettings { Method = AlignmentMethods.Dpo, Model = m.Directory, MicroBatch = 4, MaxLength = 64, Lora = lora, ActivationCheckpointing = true },
            DataPath = data, OutputDir = dir.File("run"), MaxSteps = 2, LearningRate = 1e-2, LrScheduler = LrSchedulerKind.Constant, Seed = 5, Plots = false,
        };
        var summary = new AlignmentTrainer(o).Run();
        var losses = File.ReadAllLines(Path.Combine(summary.OutputDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(r => r.ContainsKey("loss")).Select(r => r["loss"]!.GetValue<double>()).ToArray();
        Assert.Equal(Math.Log(2), losses[0], 5); // step 0: policy = base = reference

        using var baseModel = FamilyModels.LoadModel(m.Directory);
        using var adapters = PeftAdapterFolder.Load(baseModel, summary.FinalModelDir!);
        Assert.Equal(7 * baseModel.Config.NumLayers, adapters.Layers.Count);
        var ids = tensor(m.Prompt.Take(8).Select(i => (long)i).ToArray(), new long[] { 1, 8 });
        using var _ = no_grad();
        baseModel.eval();
        using var adapted = baseModel.Forward(ids);
        // Independent merge: W + (alpha/r)·B·A from the saved tensors, into a second copy of the base.
        using var merged = FamilyModels.LoadModel(m.Directory);
        using var file = SafetensorsFile.Open(Path.Combine(summary.FinalModelDir!, PeftAdapterFolder.WeightsFile));
        var state = merged.state_dict();
        foreach (var (module, _) in adapters.Layers)
        {
            using var a = file.Read(LoraAdapters.KeyA(module)).to(ScalarType.Float64);
            using var b = file.Read(LoraAdapters.KeyB(module)).to(ScalarType.Float64);
            state[module + ".weight"].copy_(state[module + ".weight"].to(ScalarType.Float64) + b.matmul(a) * 2.0);
        }
        using var reference = merged.Forward(ids);
        Assert.True((adapted - reference).abs().max().item<float>() < 1e-4, $"{family}: {(adapted - reference).abs().max().item<float>()}");
    }
}
