using Engine.Kernels;
using Engine.Kernels.Autograd;
using static TorchSharp.torch;

namespace Engine.Tests.Kernels;

/// <summary>
/// The lean autograd node under the fused layer kernels (<see cref="KernelNode"/>): its life cycle (slots reused, no node
/// when nothing needs a gradient), an undefined incoming gradient, and a failing backward surfacing as its own exception.
/// The gradients' values are checked against the formulas in <see cref="LayerKernelsTests"/>.
/// </summary>
public class KernelNodeTests
{
    /// <summary>y = 2x, computed in the body; its backward returns 2·g, or nothing, or throws, as told.</summary>
    sealed class DoubleNode(string backward) : KernelNode
    {
        public static Tensor Apply(Tensor x, string backward)
        {
            var node = new DoubleNode(backward);
            return node.Forward(new[] { x }, () => (x * 2, new[] { x }));
        }

        protected override Tensor?[] Backward(Tensor gradOutput) => backward switch
        {
            "none" => new Tensor?[] { null },
            "throw" => throw new EngineException("the test node's backward failed on purpose"),
            _ => new[] { gradOutput * 2 },
        };
    }

    [Fact]
    public void GradientsFlowThroughTheNodeAndItsSavedTensors()
    {
        using var scope = NewDisposeScope();
        var x = randn(4, 8).requires_grad_(true);
        var y = DoubleNode.Apply(x, "scale");
        Assert.True(y.requires_grad);
        var g = randn(4, 8);
        var dx = autograd.grad(new[] { y }, new[] { x }, new[] { g })[0];
        Assert.True(dx.equal(g * 2).all().item<bool>());
        Assert.True(y.detach().equal(x.detach() * 2).all().item<bool>());
    }

    [Fact]
    public void NoNodeWhenNothingNeedsAGradient()
    {
        using var scope = NewDisposeScope();
        var x = randn(4, 8);
        Assert.False(DoubleNode.Apply(x, "scale").requires_grad);
        var leaf = randn(4, 8).requires_grad_(true);
        using (no_grad())
            Assert.False(DoubleNode.Apply(leaf, "scale").requires_grad);
    }

    [SkippableFact]
    public void SlotsAreReusedWhetherOrNotBackwardRuns()
    {
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        var x = randn(16, 64).requires_grad_(true);
        var w = ones(64).requires_grad_(true);
        using var fused = FusedKernels.Use(KernelChoice.Fused);
        int before = KernelNode.SlotsMade;
        for (int i = 0; i < 500; i++)
        {
            using var scope = NewDisposeScope();
            var y = LayerKernels.RmsNorm(x, w, 1e-6, unitOffset: false)!;
            if (i % 2 == 0) autograd.grad(new[] { y }, new[] { x, w }, new[] { ones_like(y) });
        }
        // 500 graphs, each freed before the next: one slot serves them all. Other tests running at the same time may
        // add a few; a slot that never came back would add 500.
        int made = KernelNode.SlotsMade - before;
        Assert.True(made < 100, $"{made} slots made for 500 sequential calls");
    }

    [SkippableFact]
    public void AnUndefinedIncomingGradientCountsAsZero()
    {
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        using var scope = NewDisposeScope();
        using var fused = FusedKernels.Use(KernelChoice.Fused);
        var x = randn(3, 32).requires_grad_(true);
        var w = ones(32).requires_grad_(true);
        var normed = LayerKernels.RmsNorm(x, w, 1e-6, unitOffset: false)!;
        var z = DoubleNode.Apply(normed, "none"); // hands RMSNorm's node an undefined gradient
        var grads = autograd.grad(new[] { z }, new[] { x, w }, new[] { ones_like(z) });
        Assert.True(grads[0].equal(zeros_like(x)).all().item<bool>());
        Assert.True(grads[1].equal(zeros_like(w)).all().item<bool>());
    }

    [Fact]
    public void AFailingBackwardSurfacesAsItsOwnException()
    {
        using var scope = NewDisposeScope();
        var x = randn(4, 8).requires_grad_(true);
        var loss = DoubleNode.Apply(x, "throw").sum();
        var e = Assert.Throws<EngineException>(() => KernelNode.RunBackward(loss));
        Assert.Contains("failed on purpose", e.Message);
        // The process and the next backward are fine.
        var loss2 = DoubleNode.Apply(x, "scale").sum();
        KernelNode.RunBackward(loss2);
        Assert.True(x.grad!.equal(full_like(x, 2.0)).all().item<bool>());
    }
}
