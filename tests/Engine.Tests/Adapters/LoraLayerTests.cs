using Engine.Adapters;
using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Tests.Adapters;

/// <summary>A LoRA layer against the merged-weight computation W' = W + s·B·A, worked out independently in double precision.</summary>
public class LoraLayerTests
{
    static LlamaConfig Tiny => new() { HiddenSize = 16, IntermediateSize = 24, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 4, VocabSize = 32 };

    static LlamaForCausalLM Model(long seed)
    {
        var m = new LlamaForCausalLM(Tiny);
        m.InitializeWeights(seed);
        return m;
    }

    /// <summary>Gives every B random values (fresh adapters start at B = 0, which would hide A's part).</summary>
    static void Randomise(LoraAdapters adapters, long seed)
    {
        var gen = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (_, layer) in adapters.Layers) layer.B.copy_(randn(layer.B.shape, generator: gen) * 0.1);
    }

    [Fact]
    public void StepZeroEqualsTheBaseModel()
    {
        using var model = Model(1);
        var ids = tensor(new long[] { 1, 5, 9, 3, 7, 2 }).view(1, 6);
        using var before = model.Forward(ids);
        using var adapters = LoraAdapters.Attach(model, new LoraSettings { Enabled = true, Rank = 4, TargetModules = new[] { "all-linear" } }, seed: 2);
        Assert.Equal(14, adapters.Layers.Count); // 7 linear layers × 2 decoder layers
        using var after = model.Forward(ids);
        Assert.Equal(0.0, (after - before).abs().max().item<float>());
        Assert.All(adapters.Layers, l => Assert.True(l.Layer.A.abs().max().item<float>() > 0));
        // PEFT's Kaiming-uniform(a=√5) bound is 1/√in.
        var q = adapters.Layers.First(l => l.Module == "model.layers.0.self_attn.q_proj").Layer;
        Assert.True(q.A.abs().max().item<float>() <= 1 / Math.Sqrt(16) + 1e-7);
    }

    [Fact]
    public void BaseIsFrozenAndOnlyAdaptersAreTrainable()
    {
        using var model = Model(1);
        using var adapters = LoraAdapters.Attach(model, new LoraSettings { Enabled = true, Rank = 2 }, seed: 2);
        Assert.All(model.parameters(), p => Assert.False(p.requires_grad));
        Assert.Equal(new[] { "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" },
            adapters.NamedParameters().Take(2).Select(p => p.Name));
        Assert.Equal(4, adapters.Layers.Count); // q_proj and v_proj (PEFT's default) in 2 layers
        var ids = tensor(new long[] { 1, 5, 9, 3 }).view(1, 4);
        using var loss = model.Forward(ids).sum();
        loss.backward();
        Assert.All(model.parameters(), p => Assert.Null(p.grad));
        Assert.All(adapters.NamedParameters(), p => Assert.NotNull(p.Parameter.grad));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ForwardAndGradientsEqualTheMergedWeight(bool rslora)
    {
        using var model = Model(3);
        var settings = new LoraSettings { Enabled = true, Rank = 3, Alpha = 5, Dropout = 0, UseRslora = rslora, TargetModules = new[] { "o_proj", "up_proj" } };
        using var adapters = LoraAdapters.Attach(model, settings, seed: 4);
        Randomise(adapters, 5);
        var (module, layer) = adapters.Layers.First(l => l.Module.EndsWith("up_proj"));
        var proj = (Projection)model.named_modules().First(m => m.name == module).module;
        double s = rslora ? 5 / Math.Sqrt(3) : 5.0 / 3;

        var gen = new Generator(6);
        var x = randn(new long[] { 2, 3, 16 }, generator: gen);
        var g = randn(new long[] { 2, 3, 24 }, generator: gen); // upstream gradient
        var y = proj.forward(x);
        (y * g).sum().backward();

        // Independent reference in double: W' = W + s·B·A, y = x·W'ᵀ; dL/dW' = Σ gᵀx, dL/dB = s·(dL/dW')·Aᵀ, dL/dA = s·Bᵀ·(dL/dW').
        var W = proj.weight.detach().to(ScalarType.Float64);
        var A = layer.A.detach().to(ScalarType.Float64);
        var B = layer.B.detach().to(ScalarType.Float64);
        var xd = x.to(ScalarType.Float64).reshape(-1, 16);
        var gd = g.to(ScalarType.Float64).reshape(-1, 24);
        var merged = W + B.matmul(A) * s;
        var yRef = xd.matmul(merged.t());
        var dW = gd.t().matmul(xd);
        var dB = dW.matmul(A.t()) * s;
        var dA = B.t().matmul(dW) * s;
        Assert.True((y.detach().reshape(-1, 24).to(ScalarType.Float64) - yRef).abs().max().item<double>() < 1e-5);
        Assert.True((layer.B.grad!.to(ScalarType.Float64) - dB).abs().max().item<double>() < 1e-5);
        Assert.True((layer.A.grad!.to(ScalarType.Float64) - dA).abs().max().item<double>() < 1e-5);

        // The layer's own merged update, folded into the weight, gives the same whole-model logits.
        var ids = tensor(new long[] { 4, 8, 15, 16, 23, 1 }).view(1, 6);
        Tensor withAdapters;
        using (no_grad()) withAdapters = model.Forward(ids);
        adapters.MergeAndDetach();
        Assert.All(model.named_modules().Select(m => m.module).OfType<Projection>(), p => Assert.Null(p.Adapter));
        using (no_grad())
        {
            using var mergedLogits = model.Forward(ids);
            Assert.True((mergedLogits - withAdapters).abs().max().item<float>() < 1e-5);
        }
    }

    [Fact]
    public void SwitchingAdaptersOffGivesTheBase()
    {
        using var model = Model(7);
        var ids = tensor(new long[] { 1, 2, 3, 4 }).view(1, 4);
        using var baseLogits = model.Forward(ids);
        using var adapters = LoraAdapters.Attach(model, new LoraSettings { Enabled = true, Rank = 2, TargetModules = new[] { "all-linear" } }, seed: 8);
        Randomise(adapters, 9);
        using var on = model.Forward(ids);
        Assert.True((on - baseLogits).abs().max().item<float>() > 1e-3);
        using (adapters.Disabled())
        {
            using var off = model.Forward(ids);
            Assert.Equal(0.0, (off - baseLogits).abs().max().item<float>());
        }
        Assert.True(adapters.Enabled);
    }

    [Fact]
    public void DropoutActsOnlyInTraining()
    {
        using var model = Model(7);
        using var adapters = LoraAdapters.Attach(model, new LoraSettings { Enabled = true, Rank = 2, Dropout = 0.5 }, seed: 8);
        Randomise(adapters, 9);
        var ids = tensor(new long[] { 1, 2, 3, 4 }).view(1, 4);
        model.eval();
        using var a = model.Forward(ids);
        using var b = model.Forward(ids);
        Assert.Equal(0.0, (a - b).abs().max().item<float>());
        model.train();
        using var c = model.Forward(ids);
        Assert.True((c - a).abs().max().item<float>() > 0);
    }

    [Fact]
    public void CheckpointingReplaysTheDropoutMasks()
    {
        Tensor[] Grads(bool checkpointing, double dropout = 0.5)
        {
            using var model = Model(7);
            using var adapters = LoraAdapters.Attach(model, new LoraSettings { Enabled = true, Rank = 2, Dropout = dropout, TargetModules = new[] { "all-linear" } }, seed: 8);
            Randomise(adapters, 9);
            if (checkpointing) Engine.Training.ActivationCheckpointing.Enable(model, replayRandomness: true);
            else if (dropout > 0)
                // The plain reference draws each layer's masks as checkpointing does: from a fresh seed per layer.
                model.LayerRunner = (layer, h, rope, mask, cache) =>
                {
                    manual_seed(randint(long.MaxValue, new long[] { 1 }, dtype: ScalarType.Int64).item<long>());
                    return layer.Forward(h, rope, mask, cache);
                };
            manual_seed(10);
            model.Forward(tensor(new long[] { 1, 2, 3, 4, 5 }).view(1, 5)).pow(2).sum().backward();
            return adapters.NamedParameters().Select(p => p.Parameter.grad!.clone()).ToArray();
        }
        var d0 = Grads(false, 0); var d1 = Grads(true, 0);
        for (int i = 0; i < d0.Length; i++) Assert.True((d0[i] - d1[i]).abs().max().item<float>() < 1e-6, $"no-dropout gradient {i} differs under checkpointing");
        var plain = Grads(false);
        var recomputed = Grads(true);
        for (int i = 0; i < plain.Length; i++)
            Assert.True((plain[i] - recomputed[i]).abs().max().item<float>() < 1e-6, $"gradient {i} differs under checkpointing");
    }

    [Theory]
    [InlineData("lora-r", "--lora-r must be at least 1")]
    [InlineData("target", "unknown module 'qkv_proj'")]
    [InlineData("both", "exclude each other")]
    [InlineData("quant-without-peft", "add --use-peft")]
    public void BadSettingsAreRefusedByName(string what, string message)
    {
        var s = what switch
        {
            "lora-r" => new LoraSettings { Enabled = true, Rank = 0 },
            "target" => new LoraSettings { Enabled = true, TargetModules = new[] { "qkv_proj" } },
            "both" => new LoraSettings { Enabled = true, LoadIn4Bit = true, LoadIn8Bit = true },
            _ => new LoraSettings { LoadIn4Bit = true },
        };
        var e = Assert.Throws<EngineException>(s.Validate);
        Assert.Contains(message, e.Message);
    }
}
