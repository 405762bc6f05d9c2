using Engine.Kernels;
using Engine.Models;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Tests.Training;

public class ActivationCheckpointingTests
{
    static LlamaConfig Tiny => new()
    {
        HiddenSize = 32, IntermediateSize = 48, NumLayers = 3, NumHeads = 4, NumKvHeads = 2, HeadDim = 8, VocabSize = 61,
        MaxPositionEmbeddings = 64, RmsNormEps = 1e-5,
    };

    static Dictionary<string, float[]> Gradients(bool checkpointing, out float loss)
    {
        using var model = new LlamaForCausalLM(Tiny);
        model.InitializeWeights(seed: 9, std: 0.1);
        if (checkpointing) ActivationCheckpointing.Enable(model);
        using var ids = randint(0, 61, new long[] { 2, 12 }, generator: new Generator(4));
        using var hidden = model.ForwardHidden(ids);
        using var lp = TokenLogProbs.Naive(model.Logits(hidden.narrow(1, 0, 11)).reshape(-1, 61), ids.narrow(1, 1, 11).reshape(-1));
        using var l = -lp.LogProbs.mean();
        l.backward();
        loss = l.item<float>();
        return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.data<float>().ToArray());
    }

    [Fact]
    public void GradientsEqualThoseWithoutCheckpointing()
    {
        var plain = Gradients(false, out float plainLoss);
        var recomputed = Gradients(true, out float ckptLoss);
        Assert.Equal(plainLoss, ckptLoss, 6);
        foreach (var (name, g) in plain)
        {
            var h = recomputed[name];
            double maxDiff = g.Zip(h, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(maxDiff < 1e-6, $"{name}: gradients differ by {maxDiff}");
            Assert.Contains(g, v => v != 0);
        }
    }
}
