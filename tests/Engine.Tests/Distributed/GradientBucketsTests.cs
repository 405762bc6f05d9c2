using Engine.Distributed;
using Engine.Models;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Tests.Distributed;

/// <summary>
/// The bucketed gradient all-reduce against plain backward: buckets started from the backward signals at the layer
/// inputs carry final gradients (an early start would send a partial sum), and the sums land in every parameter.
/// </summary>
public class GradientBucketsTests
{
    /// <summary>Rank 0 of two identical ranks: each all-reduce doubles the buffer; counts what was started when.</summary>
    sealed class TwinRanks : ICommunicator
    {
        public int Starts;
        public int Rank => 0;
        public int Size => 2;
        public string Description => "twin ranks";
        public void AllReduceSum(Span<double> values) { foreach (ref var v in values) v *= 2; }
        public IPendingReduction StartAllReduceSum(Tensor buffer)
        {
            Starts++;
            buffer.mul_(2);
            return new Done();
        }
        public void Broadcast(Span<byte> data, int root) { }
        public byte[][] AllGather(ReadOnlySpan<byte> mine) => new[] { mine.ToArray(), mine.ToArray() };
        public void Barrier() { }
        public void Dispose() { }
        sealed class Done : IPendingReduction { public bool Poll() => true; public void Wait() { } }
    }

    static LlamaForCausalLM Model()
    {
        var config = new LlamaConfig
        {
            HiddenSize = 16, IntermediateSize = 24, NumLayers = 3, NumHeads = 2, NumKvHeads = 1, HeadDim = 8, VocabSize = 40, TieWordEmbeddings = true,
        };
        var m = new LlamaForCausalLM(config);
        m.InitializeWeights(4);
        return m;
    }

    static void Backward(LlamaForCausalLM m, int seed)
    {
        using var scope = NewDisposeScope();
        var ids = randint(0, 40, new long[] { 2, 7 }, dtype: ScalarType.Int64, generator: new Generator((ulong)seed));
        var logits = m.Logits(m.ForwardHidden(ids));
        logits.log_softmax(-1).pow(2).mean().backward();
    }

    static List<(string Name, Tensor Parameter)> Parameters(LlamaForCausalLM m) => m.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).ToList();

    static Dictionary<string, Tensor> Gradients(LlamaForCausalLM m) => Parameters(m).ToDictionary(p => p.Name, p => p.Parameter.grad!.clone());

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void BucketsStartedInBackwardCarryFinalGradients(int microBatches)
    {
        using var m = Model();
        for (int k = 0; k < microBatches; k++) Backward(m, 10 + k);
        var plain = Gradients(m);
        foreach (var (_, p) in Parameters(m)) p.grad!.zero_();

        var ranks = new TwinRanks();
        // 1 KiB buckets: every layer's matrices end up in buckets of their own.
        using var buckets = new GradientBuckets(ranks, Parameters(m).Select(p => (p.Parameter, TrainingSession.LayerOf(p.Name))), capBytes: 1024);
        TrainingSession.SignalLayers(m, buckets);
        for (int k = 0; k < microBatches; k++)
        {
            buckets.Armed = k == microBatches - 1;
            Backward(m, 10 + k);
            if (k < microBatches - 1) Assert.Equal(0, ranks.Starts); // accumulation steps reduce nothing (DDP's no_sync)
        }
        int startedInBackward = ranks.Starts;
        buckets.Finish();

        Assert.Equal(buckets.Count, ranks.Starts);
        Assert.Equal(startedInBackward, buckets.StartedDuringBackward);
        Assert.True(startedInBackward >= 3, $"{startedInBackward} of {buckets.Count} buckets started during backward");
        Assert.True(startedInBackward < buckets.Count, "the embedding's gradient is final only after backward");
        Assert.Equal(Parameters(m).Sum(p => p.Parameter.numel()), buckets.Elements);
        foreach (var (name, p) in Parameters(m))
            Assert.True(p.grad!.allclose(plain[name] * 2, rtol: 0, atol: 0), $"{name}: the summed gradient is not twice the plain one");
    }

    [Fact]
    public void OneBigBucketStartsOnlyAfterBackward()
    {
        using var m = Model();
        var ranks = new TwinRanks();
        using var buckets = new GradientBuckets(ranks, Parameters(m).Select(p => (p.Parameter, -1)));
        buckets.Armed = true;
        Backward(m, 3);
        Assert.Equal(0, ranks.Starts);
        buckets.Finish();
        Assert.Equal(1, buckets.Count);
        Assert.Equal(0, buckets.StartedDuringBackward);
    }

    [Theory]
    [InlineData("model.layers.12.mlp.up_proj.weight", 12)]
    [InlineData("model.layers.0.input_layernorm.weight", 0)]
    [InlineData("model.embed_tokens.weight", -1)]
    [InlineData("model.norm.weight", -1)]
    [InlineData("lm_head.weight", -1)]
    public void ParametersBelongToTheirDecoderLayer(string name, int layer) => Assert.Equal(layer, TrainingSession.LayerOf(name));
}
