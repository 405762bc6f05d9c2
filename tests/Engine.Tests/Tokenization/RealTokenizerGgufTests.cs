using Engine.Gguf;
using Engine.Gguf.LlamaCpp;
using Engine.Models;
using Engine.Tests.Gguf;
using Engine.Tests.Infrastructure;
using Engine.Tokenization;

namespace Engine.Tests.Tokenization;

/// <summary>
/// The four real tokenizers through GGUF: the tokenizer.ggml.* entries Engine writes for each kind, reading them
/// back into an identical tokenizer, and real llama.cpp tokenizing an exported model like Hugging Face does.
/// </summary>
public class RealTokenizerGgufTests
{
    static GgufFile VocabularyOnly(TextTokenizer tokenizer)
    {
        var writer = new GgufWriter();
        writer.Add("general.architecture", GgufValue.Str("llama"));
        foreach (var kv in GgufTokenizerMetadata.Build(tokenizer, tokenizer.VocabSize, "test")) writer.Add(kv.Key, kv.Value);
        using var stream = new MemoryStream();
        writer.Write(stream);
        return GgufFile.FromBytes(stream.ToArray(), "vocab.gguf");
    }

    [SkippableTheory]
    [InlineData("qwen3", "gpt2", "qwen2")]
    [InlineData("llama3", "gpt2", "llama-bpe")]
    [InlineData("mistral-v0.1", "llama", "default")]
    [InlineData("gemma3", "gpt2", "gemma4")]
    public void GgufVocabularyReadsBackAsTheSameTokenizer(string name, string model, string pre)
    {
        var tokenizer = RealTokenizers.Engine(name);
        var file = VocabularyOnly(tokenizer);
        Assert.Equal(model, file.Metadata["tokenizer.ggml.model"].Value);
        Assert.Equal(pre, file.Metadata["tokenizer.ggml.pre"].Value);
        var types = (int[])file.Metadata["tokenizer.ggml.token_type"].Value;
        if (tokenizer.Kind == TokenizerKind.SentencePieceBpe)
        {
            // Byte-fallback pieces are BYTE tokens, which llama.cpp turns back into bytes when decoding.
            int byteA = Array.IndexOf(tokenizer.Tokens.ToArray(), "<0x41>");
            Assert.Equal((int)TokenType.Byte, types[byteA]);
        }
        if (model == "llama")
        {
            // Scores follow the merge ranks: a token built by an earlier merge scores higher.
            var scores = (float[])file.Metadata["tokenizer.ggml.scores"].Value;
            var tokens = tokenizer.Tokens.ToList();
            Assert.True(scores[tokens.IndexOf("▁t")] > scores[tokens.IndexOf("▁the")]);
            Assert.Equal(true, file.Metadata["tokenizer.ggml.add_space_prefix"].Value);
        }

        var back = GgufTokenizerReader.TryRead(file)!;
        Assert.Equal(tokenizer.Kind, back.Kind);
        Assert.Equal(tokenizer.Tokens, back.Tokens);
        Assert.Equal(tokenizer.TokenTypes, back.TokenTypes);
        Assert.Equal((tokenizer.BosId, tokenizer.EosId, tokenizer.AddBos, tokenizer.AddEos), (back.BosId, back.EosId, back.AddBos, back.AddEos));
        Assert.Equal(tokenizer.ChatTemplate, back.ChatTemplate);
        foreach (var text in TokenizerCorpus.Texts)
        {
            var ids = tokenizer.Encode(text);
            Assert.Equal(ids, back.Encode(text));
            Assert.Equal(tokenizer.Encode(text, addSpecial: false, parseSpecial: false), back.Encode(text, addSpecial: false, parseSpecial: false));
            Assert.Equal(tokenizer.Decode(ids), back.Decode(ids));
            Assert.Equal(tokenizer.Decode(ids, skipSpecial: false), back.Decode(ids, skipSpecial: false));
        }
    }

    [SkippableTheory]
    [InlineData("mistral-v0.1")]
    [InlineData("gemma3")]
    public void TokenizerRebuiltFromGgufSavesATokenizerJsonHuggingFaceReadsTheSame(string name)
    {
        var tokenizer = RealTokenizers.Engine(name);
        var back = GgufTokenizerReader.TryRead(VocabularyOnly(tokenizer))!;
        using var dir = new TempDir();
        back.SaveTo(dir.Path);
        using var oracle = HfOracle.Load(dir.File("tokenizer.json"));
        foreach (var text in TokenizerCorpus.Texts.Take(60))
            Assert.Equal(tokenizer.Encode(text), oracle.Encode(text));
    }

    /// <summary>A one-layer random Llama with the real vocabulary, saved in HF layout and exported to GGUF F32.</summary>
    static string ExportTinyModel(string name, TempDir tmp)
    {
        var tokenizer = RealTokenizers.Engine(name);
        var config = new LlamaConfig
        {
            HiddenSize = 16, IntermediateSize = 32, NumLayers = 1, NumHeads = 2, NumKvHeads = 1, HeadDim = 8,
            VocabSize = tokenizer.VocabSize, MaxPositionEmbeddings = 512, RmsNormEps = 1e-5, TieWordEmbeddings = true,
        };
        using var model = new LlamaForCausalLM(config);
        model.InitializeWeights(seed: 5, std: 0.2);
        string dir = tmp.File("model");
        ModelLoader.Save(model, tokenizer, dir, TorchSharp.torch.ScalarType.Float32);
        return GgufExporter.Export(dir, tmp.File("model.gguf"), new GgufExportOptions { Type = GgufExportType.F32 }).OutputPath;
    }

    /// <summary>
    /// Strings llama.cpp turns into control tokens by their text whatever the GGUF says (its end-of-turn and
    /// fill-in-the-middle detection in llama-vocab.cpp); in a vocabulary where one is a normal token (Qwen's "&lt;/s&gt;"),
    /// llama.cpp with special parsing matches it whole where Hugging Face splits it.
    /// </summary>
    static readonly string[] LlamaCppForcedControl =
    {
        "</s>", "<EOT>", "<MID>", "<PAD>", "<PRE>", "<SUF>", "<end_of_turn>", "<eos>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>",
        "<|endoftext|>", "<|end|>", "<|eom_id|>", "<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|fim_prefix|>", "<|fim_middle|>",
        "<|fim_suffix|>", "<|fim_pad|>", "<|fim_repo|>", "<|file_sep|>", "<|repo_name|>", "[PAD]", "[EOS]", "[EOT]",
    };

    [SkippableTheory]
    [MemberData(nameof(RealTokenizers.All), MemberType = typeof(RealTokenizers))]
    public void LlamaCppTokenizesAnExportedModelLikeHuggingFace(string name)
    {
        LlamaCppRequirement.Require();
        var oracle = RealTokenizers.Oracle(name);
        using var tmp = new TempDir();
        string gguf = ExportTinyModel(name, tmp);
        using var llama = LlamaCppModel.Load(gguf, contextLength: 64);
        Assert.Equal(RealTokenizers.Engine(name).VocabSize, llama.VocabSize);
        var engine = RealTokenizers.Engine(name);
        var forced = LlamaCppForcedControl.Where(s => engine.Tokens.ToList().IndexOf(s) is int id && id >= 0 && engine.TokenTypes[id] == TokenType.Normal).ToList();
        var texts = TokenizerCorpus.Texts.Where(t => !forced.Any(t.Contains)).ToList();
        Assert.True(texts.Count >= TokenizerCorpus.Texts.Length - 3);
        var problems = new List<string>();
        foreach (var text in texts)
        {
            // llama.cpp with special parsing on is what HF's encode does (it always matches special tokens). GGUF
            // has no normalizer key and llama.cpp does not apply Qwen's NFC: it gets the text composed already.
            var expected = oracle.Encode(text);
            string input = engine.Kind == TokenizerKind.ByteLevelBpe && name == "qwen3" ? text.Normalize(System.Text.NormalizationForm.FormC) : text;
            var actual = llama.Tokenize(input, addSpecial: true, parseSpecial: true);
            if (!actual.SequenceEqual(expected))
                problems.Add($"[{text.Replace("\n", "\\n")}] llama.cpp {string.Join(",", actual)} vs HF {string.Join(",", expected)}");
            if (!llama.Tokenize(input, addSpecial: false, parseSpecial: true).SequenceEqual(oracle.Encode(text, addSpecial: false)))
                problems.Add($"[{text.Replace("\n", "\\n")}] without BOS differs");
        }
        Assert.True(problems.Count == 0, $"{name}: {problems.Count} differences:\n" + string.Join("\n", problems.Take(30)));

        // Importing the GGUF back gives Engine the same tokenizer.
        using var back = ModelLoader.Load(gguf, requireTokenizer: true);
        foreach (var text in TokenizerCorpus.Texts) Assert.Equal(oracle.Encode(text), back.Tokenizer!.Encode(text));
    }
}
