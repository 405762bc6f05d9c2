using Engine.Generation;
using Engine.Models;
using Engine.Tests.Infrastructure;
using static TorchSharp.torch;

namespace Engine.Tests.Models;

public class ModelLoadingTests
{
    /// <summary>A copy of stories260K's config and weights (no tokenizer) to mutate.</summary>
    static void CopyStories(string to)
    {
        string src = SharedData.Require(SharedData.Stories);
        foreach (var f in new[] { "config.json", "model.safetensors" }) File.Copy(Path.Combine(src, f), Path.Combine(to, f));
    }

    [SkippableFact]
    public void SavedAsBf16InTwoShardsGivesTheSameGreedyText()
    {
        using var dir = new TempDir();
        using var m = ModelLoader.Load(SharedData.Require(SharedData.Stories));
        string outDir = Path.Combine(dir.Path, "bf16");
        long total = m.Model.parameters().Sum(p => p.numel()) * 2;
        ModelLoader.Save(m.Model, m.Tokenizer, outDir, ScalarType.BFloat16, maxShardBytes: total * 6 / 10);
        Assert.True(File.Exists(Path.Combine(outDir, "model.safetensors.index.json")));
        Assert.Equal(2, Directory.GetFiles(outDir, "model-*-of-00002.safetensors").Length);
        using var reloaded = ModelLoader.Load(outDir);
        Assert.Equal("BF16", reloaded.StorageDtype);
        var opts = new SamplingOptions { MaxNewTokens = 25, Temperature = 0 };
        var ids = new TextGenerator(reloaded.Model, 2).Generate(new[] { new[] { 1 } }, opts)[0];
        Assert.Equal(SharedData.StoriesGreedyIds, ids);
    }

    [SkippableFact]
    public void Bf16ComputeStaysCloseToF32()
    {
        string path = SharedData.Require(SharedData.Stories);
        using var f32 = ModelLoader.Load(path);
        using var bf16 = ModelLoader.Load(path, ScalarType.BFloat16);
        using var input = tensor(new long[] { 1, 403, 407, 261 }, new long[] { 1, 4 });
        using var a = f32.Model.Forward(input);
        using var b = bf16.Model.Forward(input).to(ScalarType.Float32);
        double maxDiff = (a - b).abs().max().item<float>();
        Assert.True(maxDiff < 0.25, $"bf16 logits differ by {maxDiff}");
        Assert.Equal(a[0, 3].argmax().item<long>(), b[0, 3].argmax().item<long>());
    }

    [SkippableFact]
    public void MissingTensorIsNamed()
    {
        using var dir = new TempDir();
        CopyStories(dir.Path);
        using (var src = new SafetensorsWeightSource(dir.Path))
        {
            var kept = src.Names.Where(n => n != "model.layers.2.mlp.up_proj.weight").Select(n => (n, src.Read(n))).ToList();
            src.Dispose();
            File.Delete(dir.File("model.safetensors"));
            SafetensorsWriter.Write(dir.File("model.safetensors"), kept);
        }
        var e = Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("missing tensors: model.layers.2.mlp.up_proj.weight", e.Message);
    }

    [SkippableFact]
    public void UnexpectedAndMisShapedTensorsAreNamed()
    {
        using var dir = new TempDir();
        CopyStories(dir.Path);
        List<(string, Tensor)> all;
        using (var src = new SafetensorsWeightSource(dir.Path)) all = src.Names.Select(n => (n, src.Read(n))).ToList();
        File.Delete(dir.File("model.safetensors"));
        SafetensorsWriter.Write(dir.File("model.safetensors"), all.Append(("model.extra.weight", zeros(2))).ToList());
        Assert.Contains("unexpected tensors: model.extra.weight", Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path)).Message);

        var misShaped = all.Select(p => p.Item1 == "model.norm.weight" ? (p.Item1, zeros(65)) : p).ToList();
        SafetensorsWriter.Write(dir.File("model.safetensors"), misShaped);
        var e = Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("'model.norm.weight' has shape [65], expected [64]", e.Message);
    }

    [Fact]
    public void MissingConfig()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("config.json not found", e.Message);
    }

    [Fact]
    public void MissingFolder()
    {
        var e = Assert.Throws<EngineException>(() => ModelLoader.Load("/nonexistent/model"));
        Assert.Contains("/nonexistent/model", e.Message);
    }

    [SkippableFact]
    public void MissingWeights()
    {
        using var dir = new TempDir();
        File.Copy(Path.Combine(SharedData.Require(SharedData.Stories), "config.json"), dir.File("config.json"));
        var e = Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("no weights found", e.Message);
    }

    [Fact]
    public void UnknownArchitecture()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """{"architectures":["GPT2LMHeadModel"],"hidden_size":8}""");
        var e = Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path));
        Assert.Contains("unsupported architecture 'GPT2LMHeadModel'", e.Message);
        Assert.Contains("config.json", e.Message);
    }

    [Fact]
    public void ConfigJsonErrors()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """{"architectures":["LlamaForCausalLM"], "hidden_size": """);
        Assert.Contains("invalid JSON", Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path)).Message);
        File.WriteAllText(dir.File("config.json"), """{"architectures":["LlamaForCausalLM"], "hidden_size": "big"}""");
        Assert.Contains("'hidden_size' must be a number", Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path)).Message);
        File.WriteAllText(dir.File("config.json"), """{"architectures":["LlamaForCausalLM"], "hidden_size": 64}""");
        Assert.Contains("missing 'num_attention_heads'", Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path)).Message);
    }

    [Fact]
    public void ImplausibleSizesAreRejectedBeforeAllocation()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """
            {"architectures":["LlamaForCausalLM"],"hidden_size":1000000,"intermediate_size":4000000,"num_hidden_layers":1000,
             "num_attention_heads":8,"vocab_size":32000}
            """);
        Assert.Contains("implausible", Assert.Throws<EngineException>(() => ModelLoader.Load(dir.Path)).Message);
    }
}
