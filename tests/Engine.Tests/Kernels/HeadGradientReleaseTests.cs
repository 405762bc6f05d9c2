using Engine.Kernels;
using Engine.Memory;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Engine.Tests.Kernels;

/// <summary>
/// What the LM head leaves allocated while the rest of the backward runs (the decoder's, in a training step): the
/// allocator is read by a pass-through node in front of the head, whose backward runs right after the head's. The
/// whole backward runs inside one dispose scope, as a training step's does, so handles parked in it would count.
/// Measures the process allocator, so it runs alone.
/// </summary>
[Collection("process allocator")]
public class HeadGradientReleaseTests
{
    /// <summary>Reads the allocator when the gradient reaches the head's input (after the head's backward and its release).</summary>
    sealed class AllocatorReading : SingleTensorFunction<AllocatorReading>
    {
        [ThreadStatic] public static long InUse;
        public override string Name => "AllocatorReading";
        public override Tensor forward(AutogradContext ctx, params object[] vars) => ((Tensor)vars[0]).detach();
        public override List<Tensor> backward(AutogradContext ctx, Tensor gradOutput)
        {
            InUse = HostAllocatorProbe.InUseBytes();
            return new List<Tensor> { gradOutput };
        }
    }

    /// <summary>Bytes allocated when the head's input gradient exists, above the level right after the forward.</summary>
    static long HeldAfterHeadBackward(LogProbMode mode, long rows, long hidden, long vocab, ScalarType dtype, bool trainHead, double? softcap = null)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var x = randn(new[] { rows, hidden }, generator: gen).to(dtype).requires_grad_(true);
        var weight = (randn(new[] { vocab, hidden }, generator: gen) * 0.05).to(dtype).requires_grad_(trainHead);
        var labels = randint(vocab, new[] { rows }, generator: gen);
        long held = 0;
        // Twice: the first backward creates the weight's .grad; the second is the steady state a training step sees.
        for (int pass = 0; pass < 2; pass++)
        {
            var token = TokenLogProbs.FromHidden(AllocatorReading.apply(x), weight, labels, mode, softcap: softcap);
            var loss = token.LogProbs.sum();
            Collect();
            long afterForward = HostAllocatorProbe.InUseBytes();
            loss.backward();
            held = AllocatorReading.InUse - afterForward;
        }
        return held;
    }

    [Theory]
    [InlineData(ScalarType.Float32, false, null)]
    [InlineData(ScalarType.BFloat16, false, null)]
    [InlineData(ScalarType.Float32, true, null)]
    [InlineData(ScalarType.Float32, false, 30.0)] // Gemma's soft cap: the tanh autograd keeps is freed by its own node
    public void FusedHeadFreesItsLogitsBeforeTheDecoderBackward(ScalarType dtype, bool trainHead, double? softcap)
    {
        const long rows = 512, hidden = 16, vocab = 32000;
        long logits = rows * vocab * (dtype == ScalarType.Float32 ? 4 : 2); // 65.5 MB f32: the [M, V] logits, then their gradient
        long held = HeldAfterHeadBackward(LogProbMode.Fused, rows, hidden, vocab, dtype, trainHead, softcap);
        // Right after the forward the logits are alive (saved for backward); once the head's backward is over they are
        // gone: the level drops by about their size (their gradient's handle kept them alive until the step ended).
        Assert.True(held < -logits * 3 / 4, $"held {held:N0} bytes after the head's backward; the [M, V] logits are {logits:N0}");
        Assert.Equal(0, LogProbGradientRelease.PendingCount);
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void ChunkedHeadFreesItsWeightGradientBeforeTheDecoderBackward(ScalarType dtype)
    {
        const long rows = 64, hidden = 256, vocab = 32000;
        long weightGrad = vocab * hidden * (dtype == ScalarType.Float32 ? 4 : 2); // 32.8 MB f32
        long held = HeldAfterHeadBackward(LogProbMode.Chunked, rows, hidden, vocab, dtype, trainHead: true);
        // Steady state: the weight gradient is added into .grad; what stays is the hidden gradient [M, H] (64 KB f32).
        Assert.True(held < weightGrad / 4, $"held {held:N0} bytes after the head's backward; the weight gradient is {weightGrad:N0}");
        Assert.Equal(0, LogProbGradientRelease.PendingCount);
    }

    [Fact]
    public void ReleasedGradientsAreStillTheRightGradients()
    {
        // The early release must not disturb what autograd delivers: the fused and chunked heads against the naive one.
        using var scope = NewDisposeScope();
        var gen = new Generator(5);
        var x0 = randn(new long[] { 24, 8 }, generator: gen);
        var w0 = randn(new long[] { 300, 8 }, generator: gen) * 0.3;
        var labels = randint(300, new long[] { 24 }, generator: gen);
        (Tensor Dx, Tensor Dw) Grads(LogProbMode mode)
        {
            var x = x0.clone().requires_grad_(true);
            var w = w0.clone().requires_grad_(true);
            // Through a layer in front of the head, as the decoder would be: the gradient reaches x through it.
            var h = (x * 2).tanh();
            TokenLogProbs.FromHidden(h, w, labels, mode).LogProbs.sum().backward();
            return (x.grad!.clone(), w.grad!.clone());
        }
        var naive = Grads(LogProbMode.Naive);
        foreach (var mode in new[] { LogProbMode.Fused, LogProbMode.Chunked })
        {
            var g = Grads(mode);
            Assert.True(g.Dx.allclose(naive.Dx, rtol: 1e-5, atol: 1e-6), $"{mode}: input gradient");
            Assert.True(g.Dw.allclose(naive.Dw, rtol: 1e-5, atol: 1e-6), $"{mode}: weight gradient");
        }
    }

    static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
