using Engine.Generation;
using Engine.Models;
using Engine.Tests.Infrastructure;
using static TorchSharp.torch;

namespace Engine.Tests.Models;

/// <summary>stories260K against the facts measured independently in ../shared/README.md.</summary>
public class StoriesReferenceTests
{
    [SkippableFact]
    public void LastPositionLogitsMatchReference()
    {
        using var m = ModelLoader.Load(SharedData.Require(SharedData.Stories));
        using var input = tensor(new long[] { 1, 403, 407, 261 }, new long[] { 1, 4 });
        using var logits = m.Model.Forward(input);
        var last = logits[0, 3].data<float>().ToArray();
        float[] expected = { -6.714255f, -6.053027f, -6.715039f, -6.714494f };
        for (int i = 0; i < expected.Length; i++) Assert.InRange(last[i], expected[i] - 1e-4f, expected[i] + 1e-4f);
    }

    [SkippableFact]
    public void GreedyFromBosReproducesReferenceIds()
    {
        using var m = ModelLoader.Load(SharedData.Require(SharedData.Stories));
        var gen = new TextGenerator(m.Model, eosId: 2);
        var ids = gen.Generate(new[] { new[] { 1 } }, new SamplingOptions { MaxNewTokens = 25, Temperature = 0 })[0];
        Assert.Equal(SharedData.StoriesGreedyIds, ids);
    }

    [SkippableFact]
    public void CachedDecodingEqualsFullRecompute()
    {
        using var m = ModelLoader.Load(SharedData.Require(SharedData.Stories));
        var seq = new List<long> { 1 };
        using var _ = no_grad();
        for (int step = 0; step < 10; step++)
        {
            using var input = tensor(seq.ToArray(), new long[] { 1, seq.Count });
            using var logits = m.Model.Forward(input);
            seq.Add(logits[0, -1].argmax().item<long>());
        }
        Assert.Equal(SharedData.StoriesGreedyIds.Take(10).Select(i => (long)i), seq.Skip(1));
    }

    [SkippableFact]
    public void LeftPaddedBatchMatchesSingleSequences()
    {
        using var m = ModelLoader.Load(SharedData.Require(SharedData.Stories));
        var gen = new TextGenerator(m.Model, eosId: 2);
        var prompts = new[] { new[] { 1 }, new[] { 1, 403, 407, 261 } };
        var opts = new SamplingOptions { MaxNewTokens = 8, Temperature = 0 };
        var batched = gen.Generate(prompts, opts);
        Assert.Equal(gen.Generate(new[] { prompts[0] }, opts)[0], batched[0]);
        Assert.Equal(gen.Generate(new[] { prompts[1] }, opts)[0], batched[1]);
        Assert.Equal(SharedData.StoriesGreedyIds.Take(8), batched[0]);
        Assert.Equal(SharedData.StoriesGreedyIds.Skip(3).Take(8), batched[1]);
    }
}
