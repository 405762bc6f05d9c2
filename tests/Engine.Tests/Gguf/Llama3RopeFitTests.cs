using Engine.Gguf;
using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Tests.Gguf;

/// <summary>llama3 RoPE scaling read back from the rope_freqs divisors a GGUF file carries.</summary>
public class Llama3RopeFitTests
{
    static float[] Divisors(LlamaConfig c)
    {
        using var scope = NewDisposeScope();
        var inv = RotaryTables.InverseFrequencies(new RopeSpec(c.RopeTheta), c.HeadDim, 0);
        return RotaryTables.Llama3FrequencyFactors(c.GlobalRope, inv).data<float>().ToArray();
    }

    [Theory]
    [InlineData("llama-3.2-1b")]
    [InlineData("llama-3.2-3b")]
    public void PublishedLlama32ScalingComesBackExactly(string preset)
    {
        // θ 500000, factor 32, bands at 8192/4 and 8192 tokens: three blended pairs at head_dim 64, two at 128.
        var c = ModelPresets.Get(preset);
        var plain = c with { RopeScaling = RopeScalingKind.None, RopeScalingFactor = 1, RopeOriginalMaxPositions = 8192 };
        var fitted = Llama3RopeFit.FromFactors(plain, Divisors(c), "test");
        Assert.Equal(c, fitted);
    }

    [Theory]
    [InlineData(32, 48)]   // two blended pairs: solved
    [InlineData(32, 130)]  // one blended pair: high_freq_factor taken as 4
    [InlineData(8, 1000)]  // none blended (wavelengths 6, 167, 4443, …): the smallest context that keeps and divides the same pairs
    public void FewBlendedPairsStillReproduceEveryDivisor(int headDim, int original)
    {
        var c = LlamaConfig.ForFamily(ModelFamily.Llama) with
        {
            HiddenSize = 64, IntermediateSize = 64, NumLayers = 1, NumHeads = 2, NumKvHeads = 2, HeadDim = headDim, VocabSize = 16,
            RopeTheta = 500000, RopeScaling = RopeScalingKind.Llama3, RopeScalingFactor = 32, RopeLowFreqFactor = 1, RopeHighFreqFactor = 4,
            RopeOriginalMaxPositions = original,
        };
        var divisors = Divisors(c);
        var fitted = Llama3RopeFit.FromFactors(c with { RopeScaling = RopeScalingKind.None }, divisors, "test");
        Assert.Equal(RopeScalingKind.Llama3, fitted.RopeScaling);
        Assert.Equal(32, fitted.RopeScalingFactor);
        var again = Divisors(fitted);
        for (int i = 0; i < divisors.Length; i++) Assert.True(Math.Abs(again[i] - divisors[i]) <= 1e-5 * divisors[i], $"pair {i}: {again[i]} vs {divisors[i]}");
    }

    [Fact]
    public void DivisorsThatAreNotLlama3AreRefused()
    {
        var c = ModelPresets.Get("llama-3.2-1b") with { RopeScaling = RopeScalingKind.None };
        var divisors = Enumerable.Range(0, 32).Select(i => 1f + i % 3).ToArray();
        Assert.Contains("does not follow llama3", Assert.Throws<EngineException>(() => Llama3RopeFit.FromFactors(c, divisors, "x.gguf")).Message);
        Assert.Contains("below 1", Assert.Throws<EngineException>(() => Llama3RopeFit.FromFactors(c, new float[32], "x.gguf")).Message);
    }
}
