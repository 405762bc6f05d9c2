using System.Text.Json.Nodes;
using Engine.Methods;
using Engine.Tests.Infrastructure;
using Engine.Training;
using Xunit.Abstractions;
using Parameter = TorchSharp.Modules.Parameter;
using AdamW = Engine.Training.AdamW;
using static TorchSharp.torch;

namespace Engine.Tests.Training;

/// <summary>
/// The multi-tensor native AdamW (<see cref="OptimizerKernel.Fused"/>) against the composite optimizer
/// (<see cref="OptimizerKernel.Torch"/>, itself checked by hand and against TorchSharp's AdamW in OptimizerTests) and
/// a double-precision AdamW: step by step with weight decay and clipping, in training, and across a resume.
/// </summary>
public class FusedAdamWTests(ITestOutputHelper output)
{
    // Tensor shapes of a small model: matrices (decayed), vectors (not), one spanning several of the kernel's chunks.
    static readonly long[][] Shapes = { new long[] { 300, 257 }, new long[] { 64, 33 }, new long[] { 257 }, new long[] { 1 }, new long[] { 7, 3 } };

    static List<(string Name, Parameter P)> MakeParameters(ScalarType dtype, ulong seed)
    {
        var gen = new Generator(seed);
        return Shapes.Select((s, i) => ($"p{i}", new Parameter((0.5f * randn(s, generator: gen)).to(dtype)))).ToList();
    }

    /// <summary>
    /// Six steps of both kernels on the same parameters and gradients: weight decay 0.1, a max norm that clips some
    /// steps and not others. Returns the largest differences of (weights or masters, moments, norms).
    /// </summary>
    static (double Weights, double Moments, double Norms) Compare(ScalarType dtype, bool master, ScalarType stateDtype)
    {
        using var scope = NewDisposeScope();
        var a = MakeParameters(dtype, 3);
        var b = MakeParameters(dtype, 3);
        using var torchOpt = new AdamW(a, weightDecay: 0.1, stateDtype: stateDtype, masterWeights: master, kernel: OptimizerKernel.Torch);
        using var fusedOpt = new AdamW(b, weightDecay: 0.1, stateDtype: stateDtype, masterWeights: master, kernel: OptimizerKernel.Fused);
        var gen = new Generator(9);
        double maxW = 0, maxM = 0, maxNorm = 0;
        double[] clipAt = { 1e9, 5.0, 1e9, 0.5, 0, 20.0 };
        for (int step = 0; step < clipAt.Length; step++)
        {
            for (int i = 0; i < Shapes.Length; i++)
            {
                // Gradient scales differ per tensor, as between a model's layers.
                var g = (randn(Shapes[i], generator: gen) * Math.Pow(10, i % 3 - 1)).to(dtype);
                a[i].P.grad = g.clone();
                b[i].P.grad = g.clone();
            }
            double na = torchOpt.ClipGradients(clipAt[step]);
            double nb = fusedOpt.ClipGradients(clipAt[step]);
            maxNorm = Math.Max(maxNorm, Math.Abs(na - nb) / na);
            double lr = step == 2 ? 5e-3 : 1e-2;
            torchOpt.Step(lr);
            fusedOpt.Step(lr);
            torchOpt.ZeroGrad();
            fusedOpt.ZeroGrad();
            for (int i = 0; i < Shapes.Length; i++)
            {
                var sa = torchOpt.Slots[i];
                var sb = fusedOpt.Slots[i];
                var wa = (sa.Master ?? sa.Parameter).to(ScalarType.Float32);
                var wb = (sb.Master ?? sb.Parameter).to(ScalarType.Float32);
                // bf16 weights without a master: in units of the weight's size, or of the largest update (lr 1e-2) where
                // the weight is smaller (a rounding is relative to the value rounded: the weight, or the update).
                var diff = (wa - wb).abs();
                if (sa.Master is null && dtype == ScalarType.BFloat16) diff = diff / wa.abs().clamp_min(1e-2);
                maxW = Math.Max(maxW, diff.max().item<float>());
                // Relative to the tensor's moment scale: a moment can be a small difference of its two terms.
                double mScale = sa.ExpAvg.to(ScalarType.Float32).abs().max().item<float>() + 1e-30;
                double vScale = sa.ExpAvgSq.to(ScalarType.Float32).abs().max().item<float>() + 1e-30;
                maxM = Math.Max(maxM, (sa.ExpAvg.to(ScalarType.Float32) - sb.ExpAvg.to(ScalarType.Float32)).abs().max().item<float>() / mScale);
                maxM = Math.Max(maxM, (sa.ExpAvgSq.to(ScalarType.Float32) - sb.ExpAvgSq.to(ScalarType.Float32)).abs().max().item<float>() / vScale);
                if (sb.Master is not null)
                    Assert.True((sb.Parameter == sb.Master.to(dtype)).all().item<bool>(), "the bf16 weight is the master's rounding");
            }
        }
        return (maxW, maxM, maxNorm);
    }

    [Fact]
    public void F32StepsEqualTheCompositeOptimizer()
    {
        var (w, m, n) = Compare(ScalarType.Float32, master: false, ScalarType.Float32);
        output.WriteLine($"f32: weights {w:E2}, moments {m:E2} of scale, norms {n:E2} relative");
        Assert.True(w <= 1e-6, $"weights differ by {w}");
        Assert.True(m <= 1e-6, $"moments differ by {m} of their scale");
        Assert.True(n <= 1e-6, $"norms differ by {n} relative");
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    public void Bf16StepsEqualTheCompositeOptimizerWithinRounding(bool master, bool bf16State)
    {
        var (w, m, n) = Compare(ScalarType.BFloat16, master, bf16State ? ScalarType.BFloat16 : ScalarType.Float32);
        output.WriteLine($"bf16 master={master} bf16State={bf16State}: weights {w:E2}, moments {m:E2} of scale, norms {n:E2} relative");
        // The composite path rounds clipped gradients to bf16 before the update and the kernel does not, and bf16
        // moments and weights without a master are rounded once per step, so a rounding can go the other way:
        // - a moment by one bf16 unit (2^-8 of it), which moves that step's update by about 2^-8 of lr: with a master,
        //   at most 6 steps x lr 1e-2 x 2^-7 ~ 5e-4 (f32 moments: only the gradient rounding, far less);
        // - a bf16 weight without a master: the composite path rounds it twice per step (after the decay, after the
        //   update), the kernel once (a decay of 0.999 is mostly lost to the first rounding), so the two can drift
        //   by up to two units of the weight's size per step, plus the moments' share: (2 x 6 + 4) x 2^-8.
        double wBound = master ? (bf16State ? 5e-4 : 1e-4) : 16.0 / 256;
        Assert.True(w <= wBound, $"weights differ by {w}");
        Assert.True(m <= (bf16State ? 4.0 / 256 : 1.0 / 256), $"moments differ by {m} of their scale");
        Assert.True(n <= 1e-6, $"norms differ by {n} relative");
    }

    [Fact]
    public void FusedNormEqualsTheDoubleNorm()
    {
        var p = MakeParameters(ScalarType.Float32, 4);
        using var opt = new AdamW(p, kernel: OptimizerKernel.Fused);
        var gen = new Generator(2);
        double sum = 0;
        foreach (var (_, param) in p)
        {
            param.grad = randn(param.shape, generator: gen);
            sum += param.grad.to(ScalarType.Float64).pow(2).sum().item<double>();
        }
        var before = p[0].P.grad!.clone();
        double norm = opt.ClipGradients(1.0);
        Assert.Equal(Math.Sqrt(sum), norm, 1e-9 * Math.Sqrt(sum));
        // The fused clip leaves the gradients alone; its factor is applied in the next step.
        Assert.True((p[0].P.grad! == before).all().item<bool>());
    }

    static double[] Losses(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
        .Where(r => r.ContainsKey("loss") && !r.ContainsKey("eval_loss")).Select(r => r["loss"]!.GetValue<double>()).ToArray();

    static TrainingOptions Training(string method, string data, string output, OptimizerKernel kernel) => new()
    {
        Step = new StepSettings { Method = AlignmentMethods.Parse(method), Model = SharedData.Require(SharedData.Stories), MicroBatch = 4, OptimizerKernel = kernel },
        // Weight decay and a max norm that clips: every part of the update is exercised.
        DataPath = data, OutputDir = output, MaxSteps = 10, LearningRate = 1e-3, WeightDecay = 0.1, MaxGradNorm = 0.5,
        LrScheduler = LrSchedulerKind.Constant, Seed = 5, SaveFinal = false, Plots = false,
    };

    [SkippableTheory]
    [InlineData("dpo")]
    [InlineData("kto")]
    public void TrainingLossesEqualTheCompositeOptimizer(string method)
    {
        using var dir = new TempDir();
        var pairs = StoryPreferences.Pairs(44, seed: 17);
        string data = method == "kto" ? StoryPreferences.WriteUnpaired(dir.File("d.jsonl"), pairs) : StoryPreferences.WritePaired(dir.File("d.jsonl"), pairs);
        new AlignmentTrainer(Training(method, data, dir.File("torch"), OptimizerKernel.Torch)).Run();
        new AlignmentTrainer(Training(method, data, dir.File("fused"), OptimizerKernel.Fused)).Run();
        var a = Losses(dir.File("torch"));
        var b = Losses(dir.File("fused"));
        Assert.Equal(10, a.Length);
        Assert.Equal(10, b.Length);
        output.WriteLine($"{method}: largest loss difference over 10 steps {a.Zip(b, (x, y) => Math.Abs(x - y)).Max():E2}");
        for (int i = 0; i < 10; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-5, $"{method} step {i + 1}: fused {b[i]} vs torch {a[i]}");
    }

    /// <summary>
    /// The checkpoint format is the same for both kernels: a run checkpointed by the composite optimizer and resumed by
    /// the fused one continues as an uninterrupted fused run, loss by loss.
    /// </summary>
    [SkippableFact]
    public void ResumeFromACheckpointContinuesIdentically()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("d.jsonl"), StoryPreferences.Pairs(44, seed: 19));
        var straight = Training("dpo", data, dir.File("straight"), OptimizerKernel.Fused);
        new AlignmentTrainer(straight).Run();
        var first = Training("dpo", data, dir.File("resumed"), OptimizerKernel.Torch) with { MaxSteps = 5, SaveSteps = 5 };
        new AlignmentTrainer(first).Run();
        string checkpoint = Path.Combine(dir.File("resumed"), "checkpoint-5");
        Assert.True(File.Exists(Path.Combine(checkpoint, "optimizer.safetensors")));
        new AlignmentTrainer(straight with { OutputDir = dir.File("resumed"), ResumeFrom = checkpoint }).Run();
        var a = Losses(dir.File("straight"));
        var b = Losses(dir.File("resumed"));
        Assert.Equal(10, a.Length);
        Assert.Equal(10, b.Length);
        output.WriteLine($"resume: largest loss difference over 10 steps {a.Zip(b, (x, y) => Math.Abs(x - y)).Max():E2}");
        for (int i = 0; i < 10; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-5, $"step {i + 1}: resumed {b[i]} vs straight {a[i]}");
    }
}
