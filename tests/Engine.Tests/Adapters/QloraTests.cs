using System.Text.Json.Nodes;
using Engine.Adapters;
using Engine.Kernels.Quantized;
using Engine.Methods;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tests.Kernels.Quantized;
using Engine.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Engine.Tests.Adapters;

/// <summary>
/// QLoRA: LoRA on a frozen base stored quantized. Checked against dequantize-then-LoRA worked out in double precision
/// from the plain reference of each format (<see cref="QuantReference"/>), never from the engine's own dequantizer.
/// </summary>
public class QloraTests
{
    readonly ITestOutputHelper _output;
    public QloraTests(ITestOutputHelper output) => _output = output;

    static LlamaConfig Tiny => new() { HiddenSize = 64, IntermediateSize = 96, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 16, VocabSize = 32 };

    static LlamaForCausalLM Model(long seed)
    {
        var m = new LlamaForCausalLM(Tiny);
        m.InitializeWeights(seed);
        return m;
    }

    static LoraSettings Settings(QuantFormat format) => new()
    {
        Enabled = true, Rank = 4, Alpha = 8, Dropout = 0, TargetModules = new[] { LoraSettings.AllLinear },
        LoadIn4Bit = format != QuantFormat.Int8, LoadIn8Bit = format == QuantFormat.Int8, NestedQuantization = format == QuantFormat.Nf4DoubleQuant,
    };

    /// <summary>The weight as the format's plain reference quantizes and dequantizes it, in double precision.</summary>
    static Tensor ReferenceDequantized(Tensor weight, QuantFormat format)
    {
        float[] w = weight.detach().to(ScalarType.Float32).contiguous().data<float>().ToArray();
        var d = new double[w.Length];
        switch (format)
        {
            case QuantFormat.Nf4:
            {
                var q = QuantReference.QuantizeNf4(w);
                for (int i = 0; i < w.Length; i++) d[i] = QuantReference.Nf4[Nibble(q.Data, i)] * (double)q.Absmax[i / 64];
                break;
            }
            case QuantFormat.Nf4DoubleQuant:
            {
                var q = QuantReference.QuantizeNf4DoubleQuant(w);
                var code = QuantReference.DynamicCode();
                for (int i = 0; i < w.Length; i++)
                {
                    int block = i / 64;
                    double absmax = code[q.QAbsmax[block]] * (double)q.Absmax2[block / 256] + q.Offset;
                    d[i] = QuantReference.Nf4[Nibble(q.Data, i)] * absmax;
                }
                break;
            }
            default:
            {
                var q = QuantReference.QuantizeInt8(w);
                for (int i = 0; i < w.Length; i++) d[i] = q.Data[i] * (double)q.Scale[i / 64];
                break;
            }
        }
        return tensor(d, weight.shape, ScalarType.Float64);
    }

    static int Nibble(byte[] data, int i) => i % 2 == 0 ? data[i / 2] >> 4 : data[i / 2] & 0xF;

    static void Randomise(LoraAdapters adapters, long seed)
    {
        var gen = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (_, layer) in adapters.Layers) layer.B.copy_(randn(layer.B.shape, generator: gen) * 0.1);
    }

    [Theory]
    [InlineData(QuantFormat.Nf4)]
    [InlineData(QuantFormat.Nf4DoubleQuant)]
    [InlineData(QuantFormat.Int8)]
    public void AQloraLayerEqualsDequantizeThenLora(QuantFormat format)
    {
        using var model = Model(1);
        var settings = Settings(format);
        Assert.Equal(format, QuantizedFrozenBase.FormatOf(settings));
        using var adapters = LoraAdapters.Attach(model, settings, seed: 2);
        Randomise(adapters, 3);
        var (_, lora) = adapters.Layers.First(l => l.Module == "model.layers.1.mlp.down_proj");
        var proj = lora.Target;
        using var expectedWeight = ReferenceDequantized(proj.weight, format);
        long denseBytes = proj.weight.numel() * 4;

        adapters.QuantizeBase();
        var quantized = Assert.IsType<QuantizedLinearBase>(proj.FrozenBase);
        Assert.Equal(format, quantized.Weight.Format);
        // The dense weight is freed: the parameter keeps its shape over a single stored element.
        Assert.Equal(new long[] { 64, 96 }, proj.weight.shape);
        Assert.All(proj.weight.stride(), s => Assert.Equal(0, s));
        Assert.True(quantized.Weight.Bytes < denseBytes / 3, $"{quantized.Weight.Bytes} bytes quantized vs {denseBytes} dense");

        var x = (randn(new long[] { 3, 5, 96 }, generator: new Generator(4)) * 0.5).requires_grad_(true);
        var g = randn(new long[] { 3, 5, 64 }, generator: new Generator(5));
        var y = proj.forward(x);
        (y * g).sum().backward();

        // y = x·Ŵᵀ + s·(x·Aᵀ)·Bᵀ and dx = g·(Ŵ + s·B·A), in double precision.
        using var xd = x.detach().to(ScalarType.Float64);
        using var a = lora.A.detach().to(ScalarType.Float64);
        using var b = lora.B.detach().to(ScalarType.Float64);
        using var merged = expectedWeight + b.matmul(a) * lora.Scaling;
        using var yExpected = xd.matmul(merged.t());
        using var dxExpected = g.to(ScalarType.Float64).matmul(merged);
        Assert.True((y.detach().to(ScalarType.Float64) - yExpected).abs().max().item<double>() < 1e-5, "forward");
        Assert.True((x.grad!.to(ScalarType.Float64) - dxExpected).abs().max().item<double>() < 1e-5, "input gradient");
        // The frozen base takes no gradient; the adapter does.
        Assert.Null(proj.weight.grad);
        Assert.NotNull(lora.A.grad);
        Assert.NotNull(lora.B.grad);
    }

    [Fact]
    public void StepZeroEqualsTheQuantizedBaseAndOnlyAdaptersGetGradients()
    {
        var format = QuantFormat.Nf4;
        using var model = Model(6);
        using var dense = Model(6);
        var ids = tensor(new long[] { 1, 5, 9, 3, 7, 2, 11 }).view(1, 7);
        using var adapters = LoraAdapters.Attach(model, Settings(format), seed: 2);
        // The plain model with each targeted weight replaced by its reference dequantization: the quantized base.
        using (no_grad())
            foreach (var (module, _) in adapters.Layers)
            {
                var p = (Projection)dense.named_modules().First(m => m.name == module).module;
                using var w = ReferenceDequantized(p.weight, format);
                p.weight.copy_(w);
            }
        adapters.QuantizeBase();
        Assert.Equal(14, adapters.QuantizedBases.Count);
        using var expected = dense.Forward(ids);
        using var loss = model.Forward(ids);
        Assert.True((loss - expected).abs().max().item<float>() < 1e-4, "fresh adapters (B = 0) on the quantized base");
        using (adapters.Disabled())
        using (var off = model.Forward(ids))
            Assert.True((off - expected).abs().max().item<float>() < 1e-4, "adapters off = the quantized base");

        loss.pow(2).sum().backward();
        Assert.All(model.parameters(), p => Assert.Null(p.grad));
        Assert.All(adapters.NamedParameters(), p => Assert.NotNull(p.Parameter.grad));
        // With B = 0 only B's gradient is non-zero, and it is for every layer.
        Assert.All(adapters.Layers, l => Assert.True(l.Layer.B.grad!.abs().max().item<float>() > 0, l.Module));
    }

    [Fact]
    public void MergingIntoAQuantizedBaseUsesItsDequantizedWeight()
    {
        var format = QuantFormat.Int8;
        using var model = Model(7);
        var ids = tensor(new long[] { 4, 2, 8, 1 }).view(1, 4);
        using var adapters = LoraAdapters.Attach(model, Settings(format), seed: 2);
        Randomise(adapters, 9);
        adapters.QuantizeBase();
        using var before = model.Forward(ids);
        adapters.MergeAndDetach();
        Assert.All(model.modules().OfType<Projection>(), p => Assert.Null(p.FrozenBase));
        Assert.All(model.modules().OfType<Projection>(), p => Assert.Contains(p.weight.stride(), s => s != 0));
        using var after = model.Forward(ids);
        Assert.True((after - before).abs().max().item<float>() < 1e-4);
    }

    static TrainingOptions Options(TempDir dir, string data, string? eval, LoraSettings lora) => new()
    {
        Step = new StepSettings { Method = AlignmentMethods.Dpo, Model = SharedData.Require(SharedData.Stories), MicroBatch = 8, Lora = lora },
        DataPath = data, EvalDataPath = eval, OutputDir = dir.File("run"), LearningRate = 1e-2, Epochs = 2, Seed = 3, Plots = false,
    };

    static readonly LoraSettings Qlora4 = new() { Enabled = true, Rank = 8, Alpha = 16, Dropout = 0, TargetModules = new[] { LoraSettings.AllLinear }, LoadIn4Bit = true };

    [SkippableFact]
    public void QloraSessionStartsAtTheQuantizedBaseAndTrainsOnlyAdapters()
    {
        using var dir = new TempDir();
        string train = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(16, seed: 5));
        var o = Options(dir, train, null, Qlora4 with { NestedQuantization = true });
        o = o with { Step = o.Step with { MicroBatch = 4, Reference = ReferenceMode.Resident } };
        using var session = TrainingSession.Open(o, new SessionData.Files(), new SilentObserver());
        var adapters = session.Adapters!;
        Assert.Equal(adapters.Layers.Count, adapters.QuantizedBases.Count);
        Assert.All(adapters.QuantizedBases, q => Assert.Equal(QuantFormat.Nf4DoubleQuant, q.Weight.Format));
        long quantizedBytes = adapters.QuantizedBases.Sum(q => q.Weight.Bytes), denseBytes = adapters.QuantizedBases.Sum(q => q.Weight.Parameters * 4);
        _output.WriteLine($"stories260K frozen linear weights: {denseBytes} bytes f32 -> {quantizedBytes} bytes nf4 double-quant");
        Assert.True(quantizedBytes < denseBytes / 4); // the 1 KiB per-tensor code weighs on such tiny matrices
        Assert.Equal(adapters.NamedParameters().Select(p => p.Name), session.Optimizer.Slots.Select(s => s.Name));
        var codes = adapters.QuantizedBases.Select(q => q.Weight.Data.clone()).ToList();
        using var batches = session.Train.Batches(1, Engine.Data.DataPosition.Start).GetEnumerator();
        var first = session.TrainStep(batches, 1, 1e-2)!;
        // Step 0: policy = quantized base = reference (adapters off), so DPO's loss is exactly log 2.
        Assert.Equal(Math.Log(2), first.Loss, 5);
        session.TrainStep(batches, 1, 1e-2);
        for (int i = 0; i < codes.Count; i++) Assert.True(codes[i].equal(adapters.QuantizedBases[i].Weight.Data).all().item<bool>(), "a quantized base changed");
        Assert.All(adapters.Layers, l => Assert.True(l.Layer.B.abs().max().item<float>() > 0));
    }

    [SkippableFact]
    public void Qlora4BitDpoLiftsHeldOutAccuracy()
    {
        using var dir = new TempDir();
        var pairs = StoryPreferences.Pairs(64, seed: 11);
        string train = StoryPreferences.WritePaired(dir.File("train.jsonl"), pairs.Take(48));
        string eval = StoryPreferences.WritePaired(dir.File("eval.jsonl"), pairs.Skip(48));
        var summary = new AlignmentTrainer(Options(dir, train, eval, Qlora4)).Run();
        double accuracy = summary.LastEval!["rewards/accuracies"];
        _output.WriteLine($"QLoRA-4bit (nf4) DPO on stories260K: held-out rewards/accuracies {accuracy}, margins {summary.LastEval["rewards/margins"]}");
        Assert.True(accuracy >= 0.9, $"held-out accuracy {accuracy}");
        Assert.True(File.Exists(Path.Combine(summary.FinalModelDir!, "adapter_model.safetensors")));

        // eval --adapter attaches the adapter to the dense base (as PEFT does on an unquantized base): the preference holds.
        var reloaded = ModelEvaluation.Run(new EvaluationOptions
        {
            Step = new StepSettings { Method = AlignmentMethods.Dpo, Model = SharedData.Require(SharedData.Stories), MicroBatch = 8 },
            Adapter = summary.FinalModelDir, DataPath = eval, Seed = 3,
        });
        _output.WriteLine($"the same adapter on the dense base (eval --adapter): rewards/accuracies {reloaded["rewards/accuracies"]}");
        Assert.True(reloaded["rewards/accuracies"] >= 0.9, $"dense-base accuracy {reloaded["rewards/accuracies"]}");
    }

    [SkippableFact]
    public void TrainWithLoadIn4BitRunsFromTheCliAndSavesAPeftAdapter()
    {
        string stories = SharedData.Require(SharedData.Stories);
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(16, seed: 3));
        string run = dir.File("run");
        var r = CliRunner.Run("train", "--method", "dpo", "--model", stories, "--data", data, "--out", run, "--max-steps", "2",
            "--max-length", "64", "--use-peft", "--lora-r", "4", "--lora-alpha", "8", "--lora-target-modules", "all-linear",
            "--load-in-4bit", "--use-bnb-nested-quant", "--no-plots");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(2, File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Count(l => l.Contains("\"loss\"") && !l.Contains("eval_loss")));
        string final = Path.Combine(run, "final");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(final, "adapter_config.json")))!.AsObject();
        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal(4, config["r"]!.GetValue<int>());
        using var weights = SafetensorsFile.Open(Path.Combine(final, "adapter_model.safetensors"));
        Assert.Contains("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight", weights.Entries.Keys);
        Assert.All(weights.Entries.Keys, k => Assert.Matches(@"^base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.weight$", k));
    }
}
