using Engine.Training;
using Parameter = TorchSharp.Modules.Parameter;
using AdamW = Engine.Training.AdamW;
using static TorchSharp.torch;

namespace Engine.Tests.Training;

public class OptimizerTests
{
    [Fact]
    public void AdamWMatchesHandWorkedSteps()
    {
        // One scalar parameter, two steps, worked by hand from the AdamW update:
        // m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; p -= lr·(p·wd) then p -= lr·m̂/(√v̂+eps).
        var p = new Parameter(tensor(new float[] { 1.0f, 2.0f }.Take(1).ToArray()).reshape(1, 1));
        using var opt = new AdamW(new[] { ("w", p) }, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1);
        double lr = 0.01, x = 1.0, m = 0, v = 0;
        foreach (var (g, t) in new[] { (0.5, 1), (-0.25, 2) })
        {
            p.grad = tensor(new float[] { (float)g }).reshape(1, 1);
            opt.Step(lr);
            x *= 1 - lr * 0.1;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            double mh = m / (1 - Math.Pow(0.9, t)), vh = v / (1 - Math.Pow(0.999, t));
            x -= lr * mh / (Math.Sqrt(vh) + 1e-8);
            Assert.Equal(x, p.item<float>(), 5);
        }
    }

    [Fact]
    public void AdamWAgreesWithTorchSharpAdamW()
    {
        var gen = new Generator(5);
        var init = randn(new long[] { 3, 4 }, generator: gen);
        var a = new Parameter(init.clone());
        var b = new Parameter(init.clone());
        using var ours = new AdamW(new[] { ("a", a) }, weightDecay: 0.01);
        var theirs = optim.AdamW(new[] { b }, lr: 1e-2, weight_decay: 0.01);
        for (int i = 0; i < 5; i++)
        {
            var g = randn(new long[] { 3, 4 }, generator: gen);
            a.grad = g.clone();
            b.grad = g.clone();
            ours.Step(1e-2);
            theirs.step();
        }
        Assert.True((a - b).abs().max().item<float>() < 1e-6);
    }

    [Fact]
    public void Bf16ParameterKeepsFp32Master()
    {
        // An update far below bf16 resolution must accumulate in the master copy instead of vanishing.
        var p = new Parameter(ones(1, 1).to(ScalarType.BFloat16));
        using var opt = new AdamW(new[] { ("w", p) });
        for (int i = 0; i < 200; i++)
        {
            p.grad = ones(1, 1).to(ScalarType.BFloat16);
            opt.Step(1e-4);
        }
        var master = opt.Slots[0].Master!;
        Assert.Equal(1 - 200 * 1e-4, master.item<float>(), 3);
        Assert.InRange(p.to(ScalarType.Float32).item<float>(), 0.97f, 0.99f);
    }

    [Fact]
    public void ClippingScalesToMaxNorm()
    {
        var p = new Parameter(zeros(2));
        using var opt = new AdamW(new[] { ("w", p) });
        p.grad = tensor(new float[] { 3, 4 });
        Assert.Equal(5.0, opt.ClipGradients(1.0), 5);
        Assert.Equal(1.0, p.grad.norm().item<float>(), 4);
    }

    [Theory]
    [InlineData(LrSchedulerKind.Constant, 0, 0, 1.0)]
    [InlineData(LrSchedulerKind.Constant, 4, 0, 0.0)]    // warm-up starts at 0, as in HF
    [InlineData(LrSchedulerKind.Constant, 4, 3, 0.75)]
    [InlineData(LrSchedulerKind.Constant, 4, 13, 1.0)]
    [InlineData(LrSchedulerKind.Linear, 4, 4, 1.0)]
    [InlineData(LrSchedulerKind.Linear, 4, 9, 0.5)]      // (9-4)/(14-4) of the way down
    [InlineData(LrSchedulerKind.Cosine, 4, 9, 0.5)]      // 0.5·(1+cos(π/2))
    [InlineData(LrSchedulerKind.Cosine, 4, 14, 0.0)]
    [InlineData(LrSchedulerKind.Cosine, 0, 7, 0.5)]
    public void ScheduleValues(LrSchedulerKind kind, int warmup, int step, double expected) =>
        Assert.Equal(expected, new LearningRateSchedule(1.0, kind, warmup, 14).At(step), 10);
}
