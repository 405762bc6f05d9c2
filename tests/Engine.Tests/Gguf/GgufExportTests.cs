using Engine.Generation;
using Engine.Gguf;
using Engine.Gguf.LlamaCpp;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tokenization;

namespace Engine.Tests.Gguf;

/// <summary>Export and import against the reference files in ../shared and against real llama.cpp.</summary>
public class GgufExportTests
{
    const string StoriesGguf = "models/stories260K/stories260K.gguf";
    const string TinyRandomGguf = "models/llama-2-tiny-random/llama-2-tiny-random.gguf";
    static readonly int[] TinyRandomGreedyIds = { 31102, 18247, 4847, 634, 20459, 5601, 29710, 4660, 29509, 31364 };

    static GgufExportResult Export(string model, string output, GgufExportType type) =>
        GgufExporter.Export(model, output, new GgufExportOptions { Type = type });

    [SkippableFact]
    public void StoriesF32ExportReproducesEveryReferenceTensorByteForByte()
    {
        string reference = SharedData.Require(StoriesGguf);
        using var tmp = new TempDir();
        var result = Export(SharedData.Require(SharedData.Stories), tmp.File("s.gguf"), GgufExportType.F32);
        using var ours = GgufFile.Open(result.OutputPath);
        using var theirs = GgufFile.Open(reference);
        Assert.Equal(48, theirs.Tensors.Count);
        int compared = 0;
        foreach (var t in theirs.Tensors)
        {
            // The reference stores the tied output matrix explicitly; our export leaves it tied to token_embd,
            // as llama.cpp's converter does, and llama.cpp reads token_embd in its place.
            string name = t.Name == "output.weight" ? "token_embd.weight" : t.Name;
            var mine = ours.Tensor(name);
            Assert.Equal(t.Dims, mine.Dims);
            Assert.Equal(t.Type, mine.Type);
            Assert.True(theirs.RawBytes(t).SequenceEqual(ours.RawBytes(mine)), $"tensor {t.Name} differs");
            compared++;
        }
        Assert.Equal(48, compared);
        Assert.False(ours.TryGetTensor("output.weight", out _));
        Assert.Equal(47, ours.Tensors.Count);
        foreach (var key in new[] { "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type" })
            Assert.Equal((Array)theirs.Metadata[key].Value, (Array)ours.Metadata[key].Value);
        foreach (var key in new[] { "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
                     "llama.block_count", "llama.rope.dimension_count", "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.model",
                     "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id", "general.architecture" })
            Assert.Equal(theirs.Metadata[key].Value, ours.Metadata[key].Value);
        Assert.Equal(0u, ours.Metadata["general.file_type"].Value);
        Assert.False(ours.Metadata.ContainsKey("general.quantization_version"));
        Assert.Equal("stories260K", ours.Metadata["general.name"].Value);
    }

    [SkippableFact]
    public void StoriesF32ExportGreedyInLlamaCppEqualsTheReferenceIds()
    {
        LlamaCppRequirement.Require();
        using var tmp = new TempDir();
        var result = Export(SharedData.Require(SharedData.Stories), tmp.File("s.gguf"), GgufExportType.F32);
        using var llama = LlamaCppModel.Load(result.OutputPath, contextLength: 64);
        Assert.Equal(SharedData.StoriesGreedyIds, llama.Greedy(new[] { 1 }, 25));
    }

    [SkippableFact]
    public void ImportingStoriesGgufGivesTheReferenceGreedyText()
    {
        using var m = ModelLoader.Load(SharedData.Require(StoriesGguf), requireTokenizer: true);
        var ids = new TextGenerator(m.Model, eosId: 2).Generate(new[] { new[] { 1 } }, new SamplingOptions { MaxNewTokens = 25, Temperature = 0 })[0];
        Assert.Equal(SharedData.StoriesGreedyIds, ids);
        Assert.Equal(SharedData.StoriesGreedyText, m.Tokenizer!.Decode(ids));
        Assert.Equal("F32", m.StorageDtype);
    }

    [SkippableFact]
    public void GenerateFromAGgufFileOnTheCommandLine()
    {
        var r = CliRunner.Run("generate", "--model", SharedData.Require(StoriesGguf), "--prompt", "", "--temperature", "0", "--max-new-tokens", "25");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(SharedData.StoriesGreedyText, r.Stdout.TrimEnd('\n'));
        var info = CliRunner.Run("info", "--model", SharedData.Require(TinyRandomGguf));
        Assert.True(info.ExitCode == 0, info.ToString());
        Assert.Contains("F16/F32 on disk", info.Stdout);
        Assert.Contains("32000 tokens", info.Stdout);
    }

    [SkippableFact]
    public void TinyRandomF16ImportReproducesLlamaCppGreedyIds()
    {
        using var m = ModelLoader.Load(SharedData.Require(TinyRandomGguf), requireTokenizer: true);
        Assert.Equal(32000, m.Config.VocabSize);
        Assert.Equal(2, m.Config.NumHeads);
        var ids = new TextGenerator(m.Model, eosId: null).Generate(new[] { new[] { 1 } },
            new SamplingOptions { MaxNewTokens = 10, Temperature = 0, StopAtEos = false })[0];
        Assert.Equal(TinyRandomGreedyIds, ids);
    }

    [SkippableTheory]
    [InlineData("f32"), InlineData("f16"), InlineData("bf16"), InlineData("q8_0"), InlineData("q4_0"), InlineData("q4_k_m"), InlineData("q6_k")]
    public void ImportExportValidateWithinToleranceForEveryType(string typeName)
    {
        LlamaCppRequirement.Require();
        string source = SharedData.Require(TinyRandomGguf);
        var type = GgufExportTypes.Parse(typeName);
        using var tmp = new TempDir();
        var result = Export(source, tmp.File("x.gguf"), type);
        using var loaded = ModelLoader.Load(source, requireTokenizer: true);
        var report = GgufValidator.Validate(loaded.Model, loaded.Tokenizer!, result.OutputPath, type);
        Assert.True(report.Passed, report.Format());
        Assert.Equal(GgufValidator.TokenizerTestStrings.Count, report.TokenizerAgreements);
        // A random-weight model has near-ties everywhere: only the exact type must reproduce every greedy step.
        if (type == GgufExportType.F32) Assert.Equal(GgufValidator.GreedySteps, report.GreedyMatchingPrefix);
        using var f = GgufFile.Open(result.OutputPath);
        Assert.Equal(GgufExportTypes.FileType(type), f.Metadata["general.file_type"].Value);
        Assert.Equal(result.Tensors.Any(t => GgmlTypes.IsQuantized(t.Type)), f.Metadata.ContainsKey("general.quantization_version"));
        foreach (var t in f.Tensors.Where(t => t.Dims.Length == 1 || t.Name.EndsWith("_norm.weight")))
            Assert.Equal(GgmlType.F32, t.Type);
    }

    [SkippableTheory]
    [InlineData("f32"), InlineData("q8_0"), InlineData("q6_k"), InlineData("q4_k_m")]
    public void StoriesGgufRoundTripsWithinTolerance(string typeName)
    {
        LlamaCppRequirement.Require();
        string source = SharedData.Require(StoriesGguf);
        var type = GgufExportTypes.Parse(typeName);
        using var tmp = new TempDir();
        var result = Export(source, tmp.File("x.gguf"), type);
        using var loaded = ModelLoader.Load(source, requireTokenizer: true);
        var report = GgufValidator.Validate(loaded.Model, loaded.Tokenizer!, result.OutputPath, type);
        Assert.True(report.Passed, report.Format());
    }

    [SkippableFact]
    public void StoriesQ4KMUsesLlamaCppsMixAndFallbacks()
    {
        using var tmp = new TempDir();
        var result = Export(SharedData.Require(StoriesGguf), tmp.File("x.gguf"), GgufExportType.Q4_K_M);
        var byName = result.Tensors.ToDictionary(t => t.Name);
        // Rows of 64 do not fit 256-element K blocks: Q4_K falls back to Q5_0, Q6_K to Q8_0; rows of 172 fit nothing → F16.
        Assert.Equal(GgmlType.Q5_0, byName["blk.0.attn_q.weight"].Type);
        Assert.Equal(GgmlType.Q8_0, byName["output.weight"].Type);       // output: Q6_K would not fit, so Q8_0
        Assert.Equal(GgmlType.Q5_0, byName["token_embd.weight"].Type);   // untied here: an ordinary Q4_K tensor, fallen back
        Assert.Equal(GgmlType.F16, byName["blk.0.ffn_down.weight"].Type);
        // use_more_bits over 5 layers picks layers 2 ((i - 0) % 3 == 2) and 4 (i >= 7·5/8): Q6_K, fallen back to Q8_0.
        Assert.Equal(new[] { GgmlType.Q5_0, GgmlType.Q5_0, GgmlType.Q8_0, GgmlType.Q5_0, GgmlType.Q8_0 },
            Enumerable.Range(0, 5).Select(l => byName[$"blk.{l}.attn_v.weight"].Type));
        Assert.Equal(GgmlType.F32, byName["blk.0.attn_norm.weight"].Type);
        Assert.All(result.Fallbacks, t => Assert.Contains("fallback", t.Note));
        Assert.Contains(result.Fallbacks, t => t.Name == "blk.4.ffn_down.weight" && t.Note!.Contains("172"));
        using var f = GgufFile.Open(result.OutputPath);
        foreach (var t in result.Tensors) Assert.Equal(t.Type, f.Tensor(t.Name).Type);
    }

    [SkippableFact]
    public void APerturbedModelSavedByEngineExportsAndValidates()
    {
        LlamaCppRequirement.Require();
        // Stand-in for a model trained by Engine (the trainer is written elsewhere): stories260K with perturbed
        // weights, saved through ModelLoader.Save, exported and checked on the command line.
        using var tmp = new TempDir();
        string model = TestModels.PerturbedStories(tmp.File("trained"), relativeNoise: 0.01);
        foreach (var type in new[] { "f32", "q8_0" })
        {
            string output = tmp.File($"trained-{type}.gguf");
            var r = CliRunner.Run("export", "--model", model, "--out", output, "--type", type);
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains("result: PASS", r.Stdout);
            Assert.True(File.Exists(output));
        }
    }

    [SkippableFact]
    public void LlamaSpmTokenizerMetadataEqualsLlamaCppsVocabFile()
    {
        string model = SharedData.Require("tokenizers/llama-spm/tokenizer.model");
        using var vocab = GgufFile.Open(SharedData.Require("tokenizers/llama-spm/ggml-vocab-llama-spm.gguf"));
        var tokenizer = SpmTokenizer.Load(model);
        var entries = GgufTokenizerMetadata.Build(tokenizer, 32000, model).ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var key in new[] { "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type" })
            Assert.Equal((Array)vocab.Metadata[key].Value, (Array)entries[key].Value);
        foreach (var key in new[] { "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id" })
            Assert.Equal(vocab.Metadata[key].Value, entries[key].Value);
    }

    [SkippableFact]
    public void ChatTemplateAndVocabularyPaddingAreWritten()
    {
        using var tmp = new TempDir();
        string dir = TestModels.CopyStories(tmp.File("chat"));
        string cfgPath = Path.Combine(dir, "tokenizer_config.json");
        var cfg = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
        const string template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}";
        cfg["chat_template"] = template;
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        var result = GgufExporter.Export(dir, tmp.File("chat.gguf"), new GgufExportOptions { Type = GgufExportType.F16, Name = "chatty" });
        using var f = GgufFile.Open(result.OutputPath);
        Assert.Equal(template, f.Metadata["tokenizer.chat_template"].Value);
        Assert.Equal("chatty", f.Metadata["general.name"].Value);
        Assert.Equal(1u, f.Metadata["general.file_type"].Value);
        Assert.Equal(true, f.Metadata["tokenizer.ggml.add_bos_token"].Value);
        Assert.Equal(false, f.Metadata["tokenizer.ggml.add_eos_token"].Value);
        using var back = ModelLoader.Load(result.OutputPath, requireTokenizer: true);
        Assert.Equal(template, back.Tokenizer!.ChatTemplate);

        // A model whose embedding has more rows than the tokenizer has tokens: the vocabulary is padded with
        // unused [PADn] tokens so that llama.cpp's vocabulary matches token_embd.
        var tokenizer = back.Tokenizer!;
        var entries = GgufTokenizerMetadata.Build(tokenizer, 520, "test").ToDictionary(kv => kv.Key, kv => kv.Value);
        var tokens = (string[])entries["tokenizer.ggml.tokens"].Value;
        Assert.Equal(520, tokens.Length);
        Assert.Equal("[PAD515]", tokens[515]);
        Assert.Equal((int)TokenType.Unused, ((int[])entries["tokenizer.ggml.token_type"].Value)[515]);
        Assert.Throws<EngineException>(() => GgufTokenizerMetadata.Build(tokenizer, 100, "test"));
    }
}
