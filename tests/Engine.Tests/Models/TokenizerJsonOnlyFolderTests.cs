using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tests.Tokenization;
using Engine.Tokenization;
using static TorchSharp.torch;

namespace Engine.Tests.Models;

/// <summary>
/// A Mistral model folder as many Hugging Face repositories ship it now: config.json, safetensors and Mistral v0.1's
/// real tokenizer.json + tokenizer_config.json, no tokenizer.model. It loads, and the commands run on it.
/// </summary>
public class TokenizerJsonOnlyFolderTests
{
    [SkippableFact]
    public void AMistralFolderWithoutTokenizerModelLoadsAndGenerates()
    {
        string tokenizerDir = RealTokenizers.Folder("mistral-v0.1");
        using var dir = new TempDir();
        string folder = dir.File("mistral");
        var config = LlamaConfig.ForFamily(ModelFamily.Mistral) with
        {
            HiddenSize = 32, IntermediateSize = 64, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 8, VocabSize = 32000,
            MaxPositionEmbeddings = 512, RmsNormEps = 1e-5, RopeTheta = 10000, SlidingWindow = 16, TieWordEmbeddings = false,
            BosTokenId = 1, EosTokenId = 2,
        };
        using (var model = new LlamaForCausalLM(config))
        {
            model.InitializeWeights(seed: 9, std: 0.2);
            ModelLoader.Save(model, tokenizer: null, folder, ScalarType.Float32);
        }
        foreach (var f in Directory.GetFiles(tokenizerDir)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        Assert.False(File.Exists(Path.Combine(folder, "tokenizer.model")));

        using var loaded = ModelLoader.Load(folder, requireTokenizer: true);
        Assert.Equal(ModelFamily.Mistral, loaded.Model.Config.Family);
        var tokenizer = loaded.RequireTokenizer();
        Assert.Equal(TokenizerKind.SentencePieceBpe, tokenizer.Kind);
        // Encoded as Hugging Face's tokenizers encodes with the same file (BOS <s> added, "▁" prefix, byte fallback).
        var oracle = RealTokenizers.Oracle("mistral-v0.1");
        foreach (var text in new[] { "Hello world", "  two spaces\nand a newline", "naïve café 🙂 日本語", "x = f(1, 2) # ok" })
            Assert.Equal(oracle.Encode(text), tokenizer.Encode(text));

        var info = CliRunner.Run("info", "--model", folder);
        Assert.True(info.ExitCode == 0, info.ToString());
        Assert.Contains("mistral", info.Stdout);
        Assert.Contains("32000 tokens, bos 1, eos 2", info.Stdout);
        var generate = CliRunner.Run("generate", "--model", folder, "--prompt", "Hello world", "--max-new-tokens", "4", "--temperature", "0");
        Assert.True(generate.ExitCode == 0 && generate.Stdout.Trim().Length > 0, generate.ToString());
    }
}
