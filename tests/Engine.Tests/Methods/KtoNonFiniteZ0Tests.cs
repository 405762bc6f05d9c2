using Engine.Data;
using Engine.Kernels;
using Engine.Methods;
using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Tests.Methods;

/// <summary>
/// A NaN z0 reaches the non-finite guard on every head: the KTO step's loss is NaN, so TrainingSession.TrainStep
/// skips and counts the step as it does for any non-finite loss. Before, the fused and chunked heads' z0 kernel
/// clamped NaN to 0 (a finite, silently wrong loss) and the naive head threw instead.
/// </summary>
public class KtoNonFiniteZ0Tests
{
    /// <summary>Finite reference sums for the matched rows, NaN for the mismatched pairs (keys (i, j ≠ i)), so only z0 is poisoned.</summary>
    sealed class NanForMismatchedPairs(bool poison) : IReferenceLogps
    {
        public Tensor Sums(ReferenceQuery query, bool eval) =>
            tensor(query.Keys.Select(k => poison && (k >> 32) != (k & 0xffffffff) ? float.NaN : -20f).ToArray());

        public void Dispose() { }
    }

    static LlamaForCausalLM TinyModel()
    {
        var model = new LlamaForCausalLM(new LlamaConfig
        {
            HiddenSize = 32, IntermediateSize = 64, NumLayers = 1, NumHeads = 4, NumKvHeads = 2, HeadDim = 8, VocabSize = 64,
            MaxPositionEmbeddings = 64, RmsNormEps = 1e-5, RopeTheta = 10000,
        });
        model.InitializeWeights(3);
        return model;
    }

    static UnpairedBatch Batch()
    {
        var rows = Enumerable.Range(0, 4).Select(i =>
            new TokenizedUnpaired([1, 10 + i, 20 + i], [30 + i, 40 + i, 2], i % 2 == 0)).ToList();
        return new UnpairedBatchIterator(rows, microBatchSize: 4, seed: 0, padId: 0, maxLength: null, shuffle: false).Batches(1).Single();
    }

    [Theory]
    [InlineData(LogProbMode.Naive)]
    [InlineData(LogProbMode.Fused)]
    [InlineData(LogProbMode.Chunked)]
    public void A_nan_z0_makes_the_kto_step_loss_nan(LogProbMode head)
    {
        using var model = TinyModel();
        using var batch = Batch();
        using var scope = NewDisposeScope();
        var poisoned = AlignmentMethods.Kto.CreateStep(new ObjectiveOptions(), new StepContext(model, new NanForMismatchedPairs(true), head))
            .Compute(batch, eval: false);
        Assert.True(double.IsNaN(poisoned.Loss.item<float>()), $"{head}: loss {poisoned.Loss.item<float>()}");
        Assert.True(double.IsNaN(poisoned.Metrics.Value("kl")));

        // Control: the same batch with finite reference sums gives a finite loss, so the NaN above came from z0.
        var clean = AlignmentMethods.Kto.CreateStep(new ObjectiveOptions(), new StepContext(model, new NanForMismatchedPairs(false), head))
            .Compute(batch, eval: false);
        Assert.True(double.IsFinite(clean.Loss.item<float>()));
    }
}
