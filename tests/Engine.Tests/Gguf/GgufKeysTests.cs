using System.Text.RegularExpressions;
using Engine.Gguf;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tests.Tokenization;
using Engine.Tokenization;

namespace Engine.Tests.Gguf;

/// <summary>The GGUF key table: each key spelled once, written and read through it, with the types llama.cpp uses.</summary>
public class GgufKeysTests
{
    [Fact]
    public void KeysAreUniqueAndResolvePerArchitecture()
    {
        Assert.Equal(GgufKeys.All.Count, GgufKeys.All.Select(k => k.Template).Distinct().Count());
        Assert.True(GgufKeys.All.Count >= 30, $"{GgufKeys.All.Count} keys");
        Assert.Equal("llama.attention.head_count", GgufKeys.HeadCount.Name("llama"));
        Assert.Equal("qwen2.attention.head_count", GgufKeys.HeadCount.Name("qwen2"));
        Assert.Equal("tokenizer.ggml.tokens", GgufKeys.Tokens.Name("qwen2"));
        Assert.Throws<ArgumentException>(() => GgufKeys.BlockCount.Name());
        Assert.Same(GgufKeys.RopeFreqBase, GgufKeys.Find("gemma3.rope.freq_base", "gemma3"));
        Assert.Null(GgufKeys.Find("gemma3.rope.freq_base", "llama"));
        Assert.Same(GgufKeys.ModelName, GgufKeys.Find("general.name", null));
    }

    [Fact]
    public void TheBuilderWritesOnlyTheTypeAKeyDeclares()
    {
        var m = new GgufMetadataBuilder("llama");
        m.Add(GgufKeys.BlockCount, 5);
        m.Add(GgufKeys.RmsNormEpsilon, 1e-5);
        m.Add(GgufKeys.Tokens, new[] { "a", "b" });
        Assert.Equal(new[] { "llama.block_count", "llama.attention.layer_norm_rms_epsilon", "tokenizer.ggml.tokens" }, m.Entries.Select(e => e.Key));
        Assert.Equal(5u, m.Entries[0].Value.Value);
        Assert.Equal(GgufValueType.Float32, m.Entries[1].Value.Type);
        Assert.Throws<ArgumentException>(() => m.Add(GgufKeys.BlockCount, 6));                  // twice
        Assert.Throws<ArgumentException>(() => m.Add(GgufKeys.ContextLength, "512"));           // a string for a uint32
        Assert.Throws<OverflowException>(() => m.Add(GgufKeys.EmbeddingLength, -1));            // negative for a uint32
        Assert.Throws<ArgumentException>(() => m.Add(GgufKeys.Scores, new[] { 1, 2 }));         // int[] for float32[]
        Assert.Throws<ArgumentException>(() => m.Add(GgufKeys.AddBosToken, 1));                 // a number for a bool
        Assert.Throws<ArgumentException>(() => new GgufMetadataBuilder().Add(GgufKeys.HeadCount, 4)); // no architecture
    }

    /// <summary>Every entry the exporter writes, for both tokenizer kinds, is a table key with the table's type.</summary>
    [Fact]
    public void EveryExportedKeyIsInTheTableWithItsType()
    {
        using var tmp = new TempDir();
        Directory.CreateDirectory(tmp.File("bpe"));
        SyntheticByteBpe.WriteFolder(tmp.File("bpe"), SyntheticByteBpe.Json(ignoreMerges: true));
        var bpe = TokenizerLoader.Load(tmp.File("bpe"));
        var config = new LlamaConfig
        {
            HiddenSize = 64, IntermediateSize = 128, NumLayers = 2, NumHeads = 2, NumKvHeads = 2, HeadDim = 16, // head size ≠ hidden/heads
            VocabSize = bpe.VocabSize, MaxPositionEmbeddings = 256, RmsNormEps = 1e-5, RopeScaling = RopeScalingKind.Linear, RopeScalingFactor = 2,
        };
        using var model = new LlamaForCausalLM(config);
        model.InitializeWeights(seed: 1);
        string dir = tmp.File("model");
        ModelLoader.Save(model, bpe, dir, TorchSharp.torch.ScalarType.Float32);
        string output = tmp.File("bpe.gguf");
        GgufExporter.Export(dir, output, new GgufExportOptions { Type = GgufExportType.Q8_0 });
        var spm = GgufTokenizerMetadata.Build(ExportPipelineTests.Tokenizer(300), 300, "spm");
        using var file = GgufFile.Open(output);
        var entries = file.MetadataInOrder.Concat(spm).ToList();
        foreach (var (name, value) in entries)
        {
            var key = GgufKeys.Find(name, "llama");
            Assert.True(key is not null, $"{name} is not in the key table");
            Assert.True(key!.Accepts(value), $"{name} is {value.Type}/{value.ElementType}, the table says {key.Describe()}");
        }
        // The optional keys this config needs were written, and the importer reads the config back through the table.
        Assert.Contains("llama.attention.key_length", entries.Select(e => e.Key));
        Assert.Contains("llama.rope.scaling.factor", entries.Select(e => e.Key));
        Assert.Contains("tokenizer.ggml.merges", entries.Select(e => e.Key));
        Assert.Contains("tokenizer.ggml.scores", entries.Select(e => e.Key));
        var read = GgufModelMetadata.ReadConfig(file);
        Assert.Equal((config.HeadDim, config.NumLayers, config.RopeScalingFactor), (read.HeadDim, read.NumLayers, read.RopeScalingFactor));
    }

    [Fact]
    public void ReadsNameTheKeyAndTheTypeWhenAValueHasTheWrongType()
    {
        var writer = new GgufWriter();
        writer.Add("general.architecture", GgufValue.Str("llama"));
        writer.Add("llama.context_length", GgufValue.Str("long"));
        var bytes = new MemoryStream();
        writer.Write(bytes);
        using var file = GgufFile.FromBytes(bytes.ToArray());
        var e = Assert.Throws<EngineException>(() => file.GetInt(GgufKeys.ContextLength, "llama"));
        Assert.Contains("llama.context_length must be an integer (got String)", e.Message);
        Assert.Throws<ArgumentException>(() => file.GetArray<int>(GgufKeys.Tokens));
    }

    /// <summary>No GGUF key is spelled in the GGUF layer or the CLI except in the table.</summary>
    [Fact]
    public void NoKeyIsSpelledOutsideTheTable()
    {
        var spellings = GgufKeys.All.Select(k => k.IsPerArchitecture ? k.Template[GgufKey.ArchitecturePlaceholder.Length..] : k.Template).ToList();
        var literal = new Regex("\"(?:[^\"\\\\\\n]|\\\\.)*\"");
        var offenders = new List<string>();
        foreach (string folder in new[] { "src/Engine/Gguf", "src/Engine.Cli" })
            foreach (string path in Directory.EnumerateFiles(Path.Combine(SharedData.RepoRoot, folder), "*.cs", SearchOption.AllDirectories))
            {
                if (Path.GetFileName(path) == "GgufKeys.cs" || path.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}")) continue;
                foreach (Match m in literal.Matches(File.ReadAllText(path)))
                    if (spellings.FirstOrDefault(s => m.Value.Contains(s, StringComparison.Ordinal)) is string s)
                        offenders.Add($"{Path.GetRelativePath(SharedData.RepoRoot, path)}: {m.Value} spells {s}");
            }
        Assert.True(offenders.Count == 0, string.Join("\n", offenders));
    }
}
