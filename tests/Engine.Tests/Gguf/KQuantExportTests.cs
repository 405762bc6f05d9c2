using Engine.Gguf;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Engine.Tests.Gguf;

/// <summary>
/// The reference models' rows (8, 64, 172) fit no 256-element K block, so this model is sized to make every
/// type real: hidden 256 and FFN 512, random weights, stories260K's tokenizer. llama.cpp must compute on the
/// exported file what Engine computes on it.
/// </summary>
public class KQuantExportTests
{
    readonly ITestOutputHelper _output;
    public KQuantExportTests(ITestOutputHelper output) => _output = output;

    internal static string Model(string dir)
    {
        using var stories = ModelLoader.Load(SharedData.Require(SharedData.Stories), requireTokenizer: true);
        var config = new LlamaConfig
        {
            HiddenSize = 256, IntermediateSize = 512, NumLayers = 3, NumHeads = 4, NumKvHeads = 2, HeadDim = 64,
            VocabSize = 512, MaxPositionEmbeddings = 256, RmsNormEps = 1e-5, TieWordEmbeddings = false,
        };
        using var model = new LlamaForCausalLM(config);
        model.InitializeWeights(seed: 11, std: 0.02);
        ModelLoader.Save(model, stories.Tokenizer, dir, TorchSharp.torch.ScalarType.Float32);
        return dir;
    }

    [SkippableTheory]
    [InlineData("q4_k_m", GgmlType.Q4_K), InlineData("q6_k", GgmlType.Q6_K), InlineData("q8_0", GgmlType.Q8_0), InlineData("q4_0", GgmlType.Q4_0)]
    public void LlamaCppComputesWhatEngineComputesOnTheExportedFile(string typeName, GgmlType expectedBulk)
    {
        LlamaCppRequirement.Require();
        using var tmp = new TempDir();
        string model = Model(tmp.File("k"));
        var type = GgufExportTypes.Parse(typeName);
        var result = GgufExporter.Export(model, tmp.File("k.gguf"), new GgufExportOptions { Type = type });
        Assert.Empty(result.Fallbacks);
        Assert.Equal(expectedBulk, result.Tensors.GroupBy(t => t.Type).MaxBy(g => g.Count())!.Key);
        if (type == GgufExportType.Q4_K_M)
        {
            Assert.Equal(GgmlType.Q6_K, result.Tensors.Single(t => t.Name == "output.weight").Type);
            // use_more_bits over 3 layers: only layer 2 (i >= 7·3/8).
            Assert.Equal(new[] { GgmlType.Q4_K, GgmlType.Q4_K, GgmlType.Q6_K },
                Enumerable.Range(0, 3).Select(l => result.Tensors.Single(t => t.Name == $"blk.{l}.ffn_down.weight").Type));
        }
        using var loaded = ModelLoader.Load(model, requireTokenizer: true);
        var report = GgufValidator.Validate(loaded.Model, loaded.Tokenizer!, result.OutputPath, type);
        _output.WriteLine(report.Format());
        // Every type is real here (no fallbacks), so this is the faithfulness check on the K-quant kernels themselves.
        Assert.True(report.Passed, report.Format());
        Assert.True(report.Faithfulness.Top1Agreement >= 0.9, report.Format());
        Assert.Equal(report.Tokenizer.Count, report.TokenizerAgreements + report.TokenizerWhitespaceDifferences);
    }
}
