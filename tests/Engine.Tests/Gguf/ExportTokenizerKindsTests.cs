using System.Text.Json.Nodes;
using Engine.Gguf;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tests.Tokenization;
using Engine.Tokenization;

namespace Engine.Tests.Gguf;

/// <summary>Byte-level BPE tokenizers and Mistral configs through export and llama.cpp.</summary>
public class ExportTokenizerKindsTests
{
    /// <summary>A small random Llama with the synthetic byte-level BPE tokenizer (Llama 3 pre-tokenizer, BOS template).</summary>
    static string ByteBpeModel(string dir)
    {
        Directory.CreateDirectory(dir);
        SyntheticByteBpe.WriteFolder(dir, SyntheticByteBpe.Json(ignoreMerges: true));
        var tokenizer = TokenizerLoader.Load(dir);
        var config = new LlamaConfig
        {
            HiddenSize = 64, IntermediateSize = 128, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 16,
            VocabSize = tokenizer.VocabSize, MaxPositionEmbeddings = 256, RmsNormEps = 1e-5,
        };
        using var model = new LlamaForCausalLM(config);
        model.InitializeWeights(seed: 3, std: 0.2);
        string saved = dir + "-model";
        ModelLoader.Save(model, tokenizer, saved, TorchSharp.torch.ScalarType.Float32);
        return saved;
    }

    [SkippableFact]
    public void ByteLevelBpeExportsMergesAndAPreTokenizerLlamaCppRecognises()
    {
        LlamaCppRequirement.Require();
        using var tmp = new TempDir();
        string model = ByteBpeModel(tmp.File("bpe"));
        var result = GgufExporter.Export(model, tmp.File("bpe.gguf"), new GgufExportOptions { Type = GgufExportType.F32 });
        using (var f = GgufFile.Open(result.OutputPath))
        {
            Assert.Equal("gpt2", f.Metadata["tokenizer.ggml.model"].Value);
            Assert.Equal("llama-bpe", f.Metadata["tokenizer.ggml.pre"].Value);
            var merges = (string[])f.Metadata["tokenizer.ggml.merges"].Value;
            Assert.Equal(SyntheticByteBpe.MergeList.Select(m => $"{m.A} {m.B}"), merges);
            Assert.Equal(300u, f.Metadata["tokenizer.ggml.bos_token_id"].Value);
        }
        using var loaded = ModelLoader.Load(model, requireTokenizer: true);
        var report = GgufValidator.Validate(loaded.Model, loaded.Tokenizer!, result.OutputPath, GgufExportType.F32);
        Assert.True(report.Passed, report.Format());
        Assert.Equal(report.Tokenizer.Count, report.TokenizerAgreements);

        // Import of the exported file rebuilds the same tokenizer.
        using var back = ModelLoader.Load(result.OutputPath, requireTokenizer: true);
        foreach (var text in GgufValidator.TokenizerTestStrings)
            Assert.Equal(loaded.Tokenizer!.Encode(text), back.Tokenizer!.Encode(text));
    }

    [SkippableFact]
    public void MistralSlidingWindowIsAnnouncedAndTheModelValidates()
    {
        LlamaCppRequirement.Require();
        using var tmp = new TempDir();
        string dir = TestModels.CopyStories(tmp.File("mistral"));
        string cfgPath = Path.Combine(dir, "config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
        cfg["architectures"] = new JsonArray("MistralForCausalLM");
        cfg["model_type"] = "mistral";
        cfg["sliding_window"] = 256;
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        var result = GgufExporter.Export(dir, tmp.File("m.gguf"), new GgufExportOptions { Type = GgufExportType.F32 });
        Assert.Contains(result.Notices, n => n.Contains("sliding attention window of 256"));
        using (var f = GgufFile.Open(result.OutputPath)) Assert.Equal("llama", f.Metadata["general.architecture"].Value);
        // The validation prompts are far shorter than the window, where both attend over the same keys.
        using var loaded = ModelLoader.Load(dir, requireTokenizer: true);
        Assert.Equal(256, loaded.Config.SlidingWindow);
        var report = GgufValidator.Validate(loaded.Model, loaded.Tokenizer!, result.OutputPath, GgufExportType.F32);
        Assert.True(report.Passed, report.Format());
    }
}
