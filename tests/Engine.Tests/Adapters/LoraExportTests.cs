using Engine.Adapters;
using Engine.Gguf;
using Engine.Methods;
using Engine.Tests.Gguf;
using Engine.Tests.Infrastructure;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Tests.Adapters;

/// <summary>
/// A LoRA-trained stories260K exported two ways, each checked in real llama.cpp against Engine's base + adapter: merged
/// into one GGUF, and as llama.cpp's LoRA adapter GGUF applied on top of the base GGUF.
/// </summary>
public class LoraExportTests
{
    static string TrainAdapter(TempDir dir)
    {
        var pairs = StoryPreferences.Pairs(32, seed: 17);
        string train = StoryPreferences.WritePaired(dir.File("train.jsonl"), pairs);
        var o = new TrainingOptions
        {
            Step = new StepSettings
            {
                Method = AlignmentMethods.Dpo, Model = SharedData.Require(SharedData.Stories), MicroBatch = 8,
                Lora = new LoraSettings { Enabled = true, Rank = 8, Alpha = 16, Dropout = 0, TargetModules = new[] { LoraSettings.AllLinear } },
            },
            DataPath = train, OutputDir = dir.File("run"), LearningRate = 1e-2, Epochs = 2, Seed = 3, Plots = false,
        };
        return new AlignmentTrainer(o).Run().FinalModelDir!;
    }

    [SkippableFact]
    public void MergedAndAdapterGgufsContinueAsEngineDoes()
    {
        LlamaCppRequirement.Require();
        string stories = SharedData.Require(SharedData.Stories);
        using var dir = new TempDir();
        string adapter = TrainAdapter(dir);
        using var adapted = AdaptedModel.Load(stories, adapter, ScalarType.Float32, requireTokenizer: true);
        var tokenizer = adapted.Base.RequireTokenizer();
        var f32 = GgufExportTypes.Parse("f32");

        // The trained adapter changes the base's greedy continuation, so agreeing below says the adapter was applied.
        using (var plain = Engine.Models.ModelLoader.Load(stories, requireTokenizer: true))
        {
            var prompt = tokenizer.Encode(GgufValidator.DefaultPrompts[0], addSpecial: true);
            var sampling = new Engine.Generation.SamplingOptions { MaxNewTokens = GgufValidator.GreedySteps, Temperature = 0, StopAtEos = false };
            var withAdapter = new Engine.Generation.TextGenerator(adapted.Model, null).Generate(new[] { prompt }, sampling)[0];
            var without = new Engine.Generation.TextGenerator(plain.Model, null).Generate(new[] { prompt }, sampling)[0];
            Assert.NotEqual(without, withAdapter);
        }

        string merged = dir.File("merged.gguf");
        AdapterExport.Merged(stories, adapted.Adapters!, merged, new GgufExportOptions { Type = f32, Name = "stories-lora" });
        using var mergedModel = AdapterExport.MergedModel(stories, adapted.Adapters!);
        var mergedReport = GgufValidator.Validate(mergedModel.Model, tokenizer, merged, f32);
        Assert.True(mergedReport.Passed, mergedReport.Format());
        Assert.Equal(GgufValidator.GreedySteps, mergedReport.GreedyMatchingPrefix);
        // llama.cpp's greedy continuation of the merged file is Engine's with the adapter attached (unmerged).
        var engineGreedy = new Engine.Generation.TextGenerator(adapted.Model, null).Generate(new[] { mergedReport.GreedyPrompt },
            new Engine.Generation.SamplingOptions { MaxNewTokens = GgufValidator.GreedySteps, Temperature = 0, StopAtEos = false })[0];
        Assert.Equal(engineGreedy, mergedReport.LlamaCppGreedy);

        string baseGguf = dir.File("base.gguf");
        GgufExporter.Export(stories, baseGguf, new GgufExportOptions { Type = f32 });
        string lora = dir.File("adapter.gguf");
        GgufLoraAdapter.Write(lora, adapted.Adapters!, adapted.Base.Config, "stories-lora", force: false);
        using (var file = GgufFile.Open(lora))
        {
            Assert.Equal("adapter", file.Metadata["general.type"].Value);
            Assert.Equal("lora", file.Metadata["adapter.type"].Value);
            Assert.Equal(16f, file.Metadata["adapter.lora.alpha"].Value);
            Assert.True(file.TryGetTensor("blk.0.attn_q.weight.lora_a", out var a));
            Assert.Equal(new long[] { 64, 8 }, a.Dims);
            Assert.True(file.TryGetTensor("blk.4.ffn_down.weight.lora_b", out var b));
            Assert.Equal(new long[] { 8, 64 }, b.Dims);
        }
        var adapterReport = GgufValidator.Validate(adapted.Model, tokenizer, baseGguf, f32, adapter: new AppliedAdapter(lora, adapted.Adapters!));
        Assert.True(adapterReport.Passed, adapterReport.Format());
        Assert.Equal(GgufValidator.GreedySteps, adapterReport.GreedyMatchingPrefix);
    }
}
