using Engine.Data;
using Engine.Kernels;
using Engine.Methods;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Tests.Kernels;

/// <summary>
/// The fused RMSNorm, RoPE and SwiGLU/GeGLU autograd functions against the formulas evaluated in float64 with torch
/// ops (values and gradients; f32 to 1e-5, bf16 within its rounding), and whole models and training steps with
/// <c>--kernels fused</c> against <c>--kernels torch</c>.
/// </summary>
public class LayerKernelsTests
{
    static Tensor Randn(int seed, params long[] shape) => randn(shape, generator: new Generator((ulong)seed));

    /// <summary>Runs <paramref name="f"/> under the fused choice and returns output and gradients of Σ out·g.</summary>
    static (Tensor Out, Tensor[] Grads) RunFused(Func<Tensor[], Tensor> f, Tensor upstream, params Tensor[] inputs)
    {
        using var fused = FusedKernels.Use(KernelChoice.Fused);
        var leaves = inputs.Select(t => t.detach().clone().requires_grad_(true)).ToArray();
        var output = f(leaves);
        output.backward(new[] { upstream.to(output.dtype) });
        return (output.detach(), leaves.Select(l => l.grad!.detach()).ToArray());
    }

    /// <summary>The same formula in float64 by torch ops on float64 copies, gradients by autograd.</summary>
    static (Tensor Out, Tensor[] Grads) RunReference(Func<Tensor[], Tensor> f, Tensor upstream, params Tensor[] inputs)
    {
        var leaves = inputs.Select(t => t.detach().to(ScalarType.Float64).requires_grad_(true)).ToArray();
        var output = f(leaves);
        output.backward(new[] { upstream.to(ScalarType.Float64) });
        return (output.detach(), leaves.Select(l => l.grad!.detach()).ToArray());
    }

    static Tensor RmsNormReference(Tensor x, Tensor w, double eps, bool unitOffset) =>
        x * rsqrt(x.pow(2).mean(new long[] { -1 }, keepdim: true) + eps) * (unitOffset ? w + 1 : w);

    [SkippableTheory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.Float32, true)]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.BFloat16, true)]
    public void RmsNormMatchesTheFormula(ScalarType dtype, bool unitOffset)
    {
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        using var scope = NewDisposeScope();
        var x = (Randn(1, 3, 5, 96) * 2).to(dtype);
        var w = (Randn(2, 96) * 0.3 + (unitOffset ? 0 : 1)).to(dtype);
        var g = Randn(3, 3, 5, 96).to(dtype);
        const double eps = 1e-6;
        var (y, grads) = RunFused(t => LayerKernels.RmsNorm(t[0], t[1], eps, unitOffset)!, g, x, w);
        var (ry, rgrads) = RunReference(t => RmsNormReference(t[0], t[1], eps, unitOffset), g, x, w);
        bool bf16 = dtype == ScalarType.BFloat16;
        TensorAssert.Close(y, ry, bf16 ? 2e-2 : 1e-5, bf16 ? 1e-2 : 1e-5, "y");
        TensorAssert.Close(grads[0], rgrads[0], bf16 ? 5e-2 : 1e-5, bf16 ? 1e-2 : 1e-5, "dx");
        TensorAssert.Close(grads[1], rgrads[1], bf16 ? 0.5 : 1e-4, bf16 ? 1e-2 : 1e-5, "dw");
    }

    [SkippableFact]
    public void RmsNormModuleFusedEqualsComposite()
    {
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        using var scope = NewDisposeScope();
        var norm = new WeightRmsNorm(64, 1e-5, ScalarType.Float32);
        using (no_grad()) norm.weight.copy_(Randn(4, 64) * 0.2 + 1);
        var x = Randn(5, 7, 64);
        Tensor Run(KernelChoice k)
        {
            using var choice = FusedKernels.Use(k);
            return norm.forward(x);
        }
        TensorAssert.Close(Run(KernelChoice.Fused), Run(KernelChoice.Torch), 1e-6, 1e-5, "module output");
    }

    static Tensor RopeReference(Tensor x, Tensor cos, Tensor sin)
    {
        // x [B, T, H, D]; cos/sin [B·T, D/2] → rotate-half with the halves' tables repeated.
        long b = x.shape[0], t = x.shape[1], half = x.shape[3] / 2;
        var c = cos.view(b, t, 1, half);
        var s = sin.view(b, t, 1, half);
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        return cat(new[] { x1 * c - x2 * s, x2 * c + x1 * s }, -1);
    }

    [SkippableTheory]
    [InlineData(ScalarType.Float32, false)]
    [InlineData(ScalarType.BFloat16, false)]
    [InlineData(ScalarType.Float32, true)]
    [InlineData(ScalarType.BFloat16, true)]
    public void RopeMatchesTheFormulaInPlace(ScalarType dtype, bool transposedGradient)
    {
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        using var scope = NewDisposeScope();
        long b = 2, t = 9, hq = 4, hk = 2, d = 16;
        var angles = arange(b * t, dtype: ScalarType.Float32).view(-1, 1) * (Randn(7, 1, d / 2).abs() + 0.01);
        Tensor cos = angles.cos().contiguous(), sin = angles.sin().contiguous();
        var q = Randn(8, b, t, hq, d).to(dtype);
        var k = Randn(9, b, t, hk, d).to(dtype);
        // transposedGradient: the gradients come as views of [B, heads, T, d] memory, as attention hands them back.
        var gq = transposedGradient ? Randn(10, b, hq, t, d).to(dtype).transpose(1, 2) : Randn(10, b, t, hq, d).to(dtype);
        var gk = transposedGradient ? Randn(11, b, hk, t, d).to(dtype).transpose(1, 2) : Randn(11, b, t, hk, d).to(dtype);
        Tensor gqBefore = gq.clone(), gkBefore = gk.clone();
        Tensor qLeaf = q.clone().requires_grad_(true), kLeaf = k.clone().requires_grad_(true);
        Tensor qo, ko;
        using (FusedKernels.Use(KernelChoice.Fused))
        {
            // In place on the projection-like outputs (non-leaf tensors), as the attention layer calls it.
            qo = qLeaf * 1;
            ko = kLeaf * 1;
            var qPtr = Engine.Util.TensorMemory.DataPointer(qo);
            qo = LayerKernels.Rope(qo, cos, sin)!;
            ko = LayerKernels.Rope(ko, cos, sin)!;
            Assert.NotNull(qo);
            Assert.Equal(qPtr, Engine.Util.TensorMemory.DataPointer(qo)); // rotated where it lay
        }
        autograd.backward(new[] { qo, ko }, new[] { gq, gk });
        var rq = RunReference(x => RopeReference(x[0], x[1], x[2]), gq, q, cos, sin);
        var rk = RunReference(x => RopeReference(x[0], x[1], x[2]), gk, k, cos, sin);
        bool bf16 = dtype == ScalarType.BFloat16;
        double atol = bf16 ? 3e-2 : 1e-5, rtol = bf16 ? 1e-2 : 1e-5;
        TensorAssert.Close(qo, rq.Out, atol, rtol, "q");
        TensorAssert.Close(ko, rk.Out, atol, rtol, "k");
        TensorAssert.Close(qLeaf.grad!, rq.Grads[0], atol, rtol, "dq");
        TensorAssert.Close(kLeaf.grad!, rk.Grads[0], atol, rtol, "dk");
        Assert.True(gq.eq(gqBefore).all().item<bool>() && gk.eq(gkBefore).all().item<bool>(), "the upstream gradients were written to");
    }

    [SkippableTheory]
    [InlineData(ScalarType.Float32, GatedActivation.SwiGlu)]
    [InlineData(ScalarType.Float32, GatedActivation.GeGlu)]
    [InlineData(ScalarType.BFloat16, GatedActivation.SwiGlu)]
    [InlineData(ScalarType.BFloat16, GatedActivation.GeGlu)]
    public void GatedActivationMatchesTheFormula(ScalarType dtype, GatedActivation activation)
    {
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        using var scope = NewDisposeScope();
        var gate = (Randn(12, 4, 33, 40) * 3).to(dtype);
        var up = Randn(13, 4, 33, 40).to(dtype);
        var g = Randn(14, 4, 33, 40).to(dtype);
        var (h, grads) = RunFused(t => LayerKernels.Gated(t[0], t[1], activation)!, g, gate, up);
        // Written from the definitions (not torch's silu/gelu): silu(x) = x·σ(x), GELU-tanh = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
        Func<Tensor[], Tensor> reference = activation == GatedActivation.SwiGlu
            ? t => t[0] * sigmoid(t[0]) * t[1]
            : t => 0.5 * t[0] * (1 + tanh(Math.Sqrt(2 / Math.PI) * (t[0] + 0.044715 * t[0].pow(3)))) * t[1];
        var (rh, rgrads) = RunReference(reference, g, gate, up);
        bool bf16 = dtype == ScalarType.BFloat16;
        double atol = bf16 ? 2e-2 : 1e-5, rtol = bf16 ? 1e-2 : 1e-5;
        TensorAssert.Close(h, rh, atol, rtol, "h");
        TensorAssert.Close(grads[0], rgrads[0], atol, rtol, "d_gate");
        TensorAssert.Close(grads[1], rgrads[1], atol, rtol, "d_up");
        // And torch's own composite agrees in f32 (the switch's other side).
        if (!bf16)
        {
            var composite = activation == GatedActivation.SwiGlu ? F.silu(gate) * up : F.gelu(gate, TorchSharp.Modules.GELU.Approximate.tanh, false) * up;
            TensorAssert.Close(h, composite, 1e-5, 1e-5, "torch composite");
        }
    }

    [SkippableFact]
    public void FallsBackToTheCompositeWhenTheChoiceIsTorch()
    {
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        using var scope = NewDisposeScope();
        var x = Randn(15, 2, 8);
        using (FusedKernels.Use(KernelChoice.Torch))
        {
            Assert.Null(LayerKernels.RmsNorm(x, ones(8), 1e-6, false));
            Assert.Null(LayerKernels.Gated(x, x, GatedActivation.SwiGlu));
        }
        using (FusedKernels.Use(KernelChoice.Fused))
        {
            Assert.Null(LayerKernels.RmsNorm(x.to(ScalarType.Float64), ones(8, dtype: ScalarType.Float64), 1e-6, false)); // f64: composite
            Assert.NotNull(LayerKernels.RmsNorm(x, ones(8), 1e-6, false));
        }
    }

    /// <summary>The real stories260K model: logits and every parameter's gradient, fused vs torch, with and without checkpointing.</summary>
    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void WholeModelFusedEqualsTorch(bool checkpointing)
    {
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        string dir = SharedData.Require(SharedData.Stories);
        using var loaded = ModelLoader.Load(dir);
        var model = loaded.Model;
        if (checkpointing) ActivationCheckpointing.Enable(model);
        var ids = randint(1, model.Config.VocabSize, new long[] { 2, 24 }, generator: new Generator(5));
        (Tensor Logits, Dictionary<string, Tensor> Grads) Run(KernelChoice k)
        {
            model.Kernels = k;
            model.zero_grad();
            var logits = model.Forward(ids);
            (logits.to(ScalarType.Float64).log_softmax(-1)[.., .., 7]).sum().backward();
            return (logits.detach(), model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.detach().clone()));
        }
        var fused = Run(KernelChoice.Fused);
        var torch = Run(KernelChoice.Torch);
        TensorAssert.Close(fused.Logits, torch.Logits, 1e-5, 1e-5, "logits");
        foreach (var (name, grad) in torch.Grads)
        {
            double scale = grad.abs().max().item<float>();
            TensorAssert.Close(fused.Grads[name], grad, 1e-5 * Math.Max(1, scale), 1e-4, name);
        }
    }

    /// <summary>Ten optimizer steps of every method on stories260K: the losses with fused kernels equal torch's to 1e-5.</summary>
    [SkippableTheory]
    [InlineData("dpo")]
    [InlineData("kto")]
    [InlineData("sft")]
    [InlineData("orpo")]
    [InlineData("simpo")]
    public void TenTrainingStepsMatchTorch(string method)
    {
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        string model = SharedData.Require(SharedData.Stories);
        var config = ModelLoader.Load(model).Model.Config;
        List<double> Losses(KernelChoice kernels)
        {
            var step = new StepSettings { Method = AlignmentMethods.Parse(method), Model = model, MicroBatch = 2, MaxLength = 32, Kernels = kernels };
            var shape = new SyntheticShape(2, PromptTokens: 4, CompletionTokens: 28, config.VocabSize, FirstToken: 1, Batches: 10, Seed: 11);
            using var session = TrainingSession.Open(new TrainingOptions { Step = step, Seed = 11, SaveFinal = false, Plots = false },
                new SessionData.Synthetic(shape), SilentObserver.Instance);
            using var batches = session.Train.Batches(1, DataPosition.Start).GetEnumerator();
            var losses = new List<double>();
            for (int i = 0; i < 10; i++) losses.Add(session.TrainStep(batches, gradAccum: 1, learningRate: 1e-4)!.Loss);
            return losses;
        }
        var fused = Losses(KernelChoice.Fused);
        var torch = Losses(KernelChoice.Torch);
        for (int i = 0; i < 10; i++) Assert.True(Math.Abs(fused[i] - torch[i]) <= 1e-5 * Math.Max(1, Math.Abs(torch[i])),
            $"{method} step {i}: fused {fused[i]:G9}, torch {torch[i]:G9}");
        Assert.True(Math.Abs(torch[9] - torch[0]) > 1e-4, "the steps changed the model (the comparison is not of ten identical steps)");
    }
}
