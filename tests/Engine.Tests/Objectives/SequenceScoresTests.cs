using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Tests.Objectives;

public class SequenceScoresTests
{
    [Fact]
    public void From_tokens_sums_completion_positions_only()
    {
        // Row 0: prompt, completion, completion; row 1: prompt, completion, padding.
        var logps = tensor(new float[] { -9, -1, -2, -9, -3, -9 }).reshape(2, 3).requires_grad_(true);
        var mask = tensor(new float[] { 0, 1, 1, 0, 1, 0 }).reshape(2, 3);
        var logitMeans = tensor(new float[] { 100, 0.5f, 1.5f, 100, -2, 100 }).reshape(2, 3);
        var s = SequenceScores.FromTokens(logps, mask, logitMeans);
        Assert.Equal(new[] { -3f, -3f }, s.LogpSum.data<float>().ToArray());
        Assert.Equal(new[] { 2f, 1f }, s.TokenCount.data<float>().ToArray());
        Assert.Equal(new[] { 2f, -2f }, s.LogitSum.data<float>().ToArray());
        Assert.False(s.TokenCount.requires_grad);
        Assert.False(s.LogitSum.requires_grad);
        s.LogpSum.sum().backward();
        Assert.Equal(new[] { 0f, 1, 1, 0, 1, 0 }, logps.grad!.flatten().data<float>().ToArray());
    }

    [Fact]
    public void Mismatched_shapes_are_a_caller_bug()
    {
        var bad = new SequenceScores(tensor(new float[] { -1, -2 }), tensor(new float[] { 1 }), tensor(new float[] { 0, 0 }));
        var ok = new SequenceScores(tensor(new float[] { -1, -2 }), tensor(new float[] { 1, 1 }), tensor(new float[] { 0, 0 }));
        Assert.Throws<ArgumentException>(() => SftObjective.Compute(bad));
        Assert.Throws<ArgumentException>(() => new DpoObjective(new DpoOptions { ReferenceFree = true }).Compute(ok,
            new SequenceScores(tensor(new float[] { -1 }), tensor(new float[] { 1 }), tensor(new float[] { 0 })), null, null));
    }
}
