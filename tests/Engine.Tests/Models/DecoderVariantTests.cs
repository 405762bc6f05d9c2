using Engine.Generation;
using Engine.Models;
using Engine.Tests.Infrastructure;
using static TorchSharp.torch;

namespace Engine.Tests.Models;

/// <summary>Config variants checked against the plain-loop reference in <see cref="NaiveLlamaReference"/>.</summary>
public class DecoderVariantTests
{
    static LlamaConfig Tiny(string arch = "LlamaForCausalLM", int heads = 4, int kvHeads = 2, int headDim = 8, bool tied = false,
        int? window = null, RopeScalingKind scaling = RopeScalingKind.None, double factor = 1) => new()
    {
        Architecture = arch, HiddenSize = 24, IntermediateSize = 40, NumLayers = 2, NumHeads = heads, NumKvHeads = kvHeads,
        HeadDim = headDim, VocabSize = 50, MaxPositionEmbeddings = 64, RmsNormEps = 1e-5, RopeTheta = 500,
        TieWordEmbeddings = tied, SlidingWindow = window, RopeScaling = scaling, RopeScalingFactor = factor,
    };

    static void AssertMatchesReference(LlamaConfig config, int length = 9)
    {
        using var model = new LlamaForCausalLM(config);
        model.InitializeWeights(seed: 7, std: 0.2);
        var ids = Enumerable.Range(0, length).Select(i => (i * 17 + 3) % config.VocabSize).ToArray();
        using var input = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, length });
        using var _ = no_grad();
        using var logits = model.Forward(input);
        var expected = new NaiveLlamaReference(model).Forward(ids);
        var actual = logits[0].data<float>().ToArray();
        for (int t = 0; t < length; t++)
            for (int v = 0; v < config.VocabSize; v++)
                Assert.True(Math.Abs(actual[t * config.VocabSize + v] - expected[t][v]) < 1e-4,
                    $"position {t} token {v}: {actual[t * config.VocabSize + v]} vs {expected[t][v]}");
    }

    [Fact] public void GroupedQueryAttentionUntied() => AssertMatchesReference(Tiny());
    [Fact] public void MultiHeadTied() => AssertMatchesReference(Tiny(heads: 4, kvHeads: 4, tied: true));
    [Fact] public void MultiQueryWithExplicitHeadDim() => AssertMatchesReference(Tiny(heads: 3, kvHeads: 1, headDim: 10));
    [Fact] public void LinearRopeScaling() => AssertMatchesReference(Tiny(scaling: RopeScalingKind.Linear, factor: 4));
    [Fact] public void MistralSlidingWindow() => AssertMatchesReference(Tiny("MistralForCausalLM", window: 3), length: 9);

    /// <summary>Dynamic NTK: the sequence outgrows max_position_embeddings (5), so the RoPE base stretches.</summary>
    [Fact]
    public void DynamicNtkRopeScalingPastTheTrainedContext() =>
        AssertMatchesReference(Tiny(scaling: RopeScalingKind.Dynamic, factor: 2) with { MaxPositionEmbeddings = 5 }, length: 9);

    /// <summary>llama3 scaling with one frequency pair in each band (kept, blended, divided), past an original context of 32.</summary>
    [Fact]
    public void Llama3RopeScalingPastTheOriginalContext() =>
        AssertMatchesReference(Tiny(scaling: RopeScalingKind.Llama3, factor: 8) with
        {
            RopeLowFreqFactor = 1, RopeHighFreqFactor = 4, RopeOriginalMaxPositions = 32,
        }, length: 40);

    /// <summary>Gemma 3's parts where the family fixture keeps Gemma's own values: soft-capped logits, every second layer
    /// global, a query scale other than head_dim, and linear scaling that applies to the global layers only.</summary>
    [Fact]
    public void GemmaWithSoftcapsAnotherPatternAndScaledGlobalRope() =>
        AssertMatchesReference(LlamaConfig.ForFamily(ModelFamily.Gemma3) with
        {
            HiddenSize = 24, IntermediateSize = 40, NumLayers = 4, NumHeads = 2, NumKvHeads = 1, HeadDim = 8, VocabSize = 50,
            MaxPositionEmbeddings = 64, RmsNormEps = 1e-6, RopeTheta = 5000, LocalRopeTheta = 50, SlidingWindow = 3,
            SlidingWindowPattern = 2, QueryPreAttnScalar = 5, FinalLogitSoftcapping = 1.5,
            RopeScaling = RopeScalingKind.Linear, RopeScalingFactor = 2,
        }, length: 9);

    [Fact]
    public void SlidingWindowHoldsDuringCachedDecoding()
    {
        var config = Tiny("MistralForCausalLM", window: 4);
        using var model = new LlamaForCausalLM(config);
        model.InitializeWeights(seed: 3, std: 0.3);
        var reference = new NaiveLlamaReference(model);
        var prompt = new[] { 5, 9, 13 };
        var generated = new TextGenerator(model, eosId: null).Generate(new[] { prompt }, new SamplingOptions { MaxNewTokens = 8, Temperature = 0 })[0];
        // The reference recomputes every prefix from scratch; the cache must give the same argmax each step.
        var seq = prompt.ToList();
        foreach (var next in generated)
        {
            var logits = reference.Forward(seq.ToArray())[^1];
            int argmax = Array.IndexOf(logits, logits.Max());
            Assert.Equal(argmax, next);
            seq.Add(next);
        }
    }

    [Fact]
    public void PaddingMaskMatchesUnpaddedRows()
    {
        using var model = new LlamaForCausalLM(Tiny());
        model.InitializeWeights(seed: 11, std: 0.2);
        using var _ = no_grad();
        // Row 0 is right-padded; with the mask its real positions equal the unpadded forward.
        using var batch = tensor(new long[] { 4, 8, 15, 0, 0, 16, 23, 42, 7, 1 }, new long[] { 2, 5 });
        using var mask = tensor(new long[] { 1, 1, 1, 0, 0, 1, 1, 1, 1, 1 }, new long[] { 2, 5 });
        using var padded = model.Forward(batch, mask);
        using var alone = model.Forward(tensor(new long[] { 4, 8, 15 }, new long[] { 1, 3 }));
        Assert.True((padded[0].narrow(0, 0, 3) - alone[0]).abs().max().item<float>() < 1e-5);
        Assert.False(padded.isnan().any().item<bool>());
    }
}
