using System.Text.Json;
using Engine.Bench;
using Engine.Cli.Options;
using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Cli.Commands;

public sealed record BenchForwardArgs(string Preset = "bench-25m", int Batch = 4, int SeqLen = 256, int Steps = 3, IReadOnlyList<string>? Dtypes = null, bool Json = false)
{
    public IReadOnlyList<string> Dtypes { get; init; } = Dtypes ?? new[] { "f32", "bf16" };
}

public sealed class BenchForwardCommand : CliCommand<BenchForwardArgs>
{
    public override string Name => "bench forward";
    public override string Summary => "Forward+backward tokens/s of a preset model in f32 and bf16, next to the matmul rate.";
    protected override BenchForwardArgs Defaults => new();

    protected override IReadOnlyList<CliOption<BenchForwardArgs>> Options { get; } = new[]
    {
        Opt<BenchForwardArgs>.Choice("model-preset", "the model shape (random weights)", ModelPresets.All.Keys.ToList(), v => v, a => a.Preset, (a, v) => a with { Preset = v }),
        Opt<BenchForwardArgs>.Int("batch", "rows per step", a => a.Batch, (a, v) => a with { Batch = v }, min: 1),
        Opt<BenchForwardArgs>.Int("seq-len", "tokens per row", a => a.SeqLen, (a, v) => a with { SeqLen = v }, min: 2),
        Opt<BenchForwardArgs>.Int("steps", "timed steps after a warm-up", a => a.Steps, (a, v) => a with { Steps = v }, min: 1),
        Opt<BenchForwardArgs>.List("dtype", "compute dtypes", "f32,bf16", (s, what) => s is "f32" or "bf16" ? s : throw new UsageException($"{what} takes f32 and/or bf16 (got '{s}')"),
            a => a.Dtypes, (a, v) => a with { Dtypes = v }, sample: "f32"),
        Opt<BenchForwardArgs>.Flag("json", "one JSON object per dtype", a => a.Json, (a, v) => a with { Json = v }),
    };

    protected override int Execute(Parsed<BenchForwardArgs> parsed, CliContext context)
    {
        var a = parsed.Value;
        var w = context.Out;
        var results = new List<object>();
        foreach (var dtype in a.Dtypes.Select(TensorMemory.ParseDtype))
        {
            double mm = MatmulRate.Measure(dtype);
            var r = ForwardBackwardBench.Run(a.Preset, dtype, a.Batch, a.SeqLen, a.Steps, mm);
            double bf16Rate = dtype == ScalarType.BFloat16 ? mm : MatmulRate.Measure(ScalarType.BFloat16);
            var row = new Dictionary<string, object>
            {
                ["model"] = r.Model, ["dtype"] = r.Dtype, ["parameters"] = r.Parameters, ["batch"] = r.Batch, ["seq_len"] = r.SeqLen,
                ["tokens_per_s"] = Math.Round(r.TokensPerSecond, 1), ["step_s"] = Math.Round(r.StepSeconds, 4),
                ["achieved_gflops"] = Math.Round(r.AchievedFlops / 1e9, 2), ["matmul_gflops"] = Math.Round(mm / 1e9, 2),
                ["bf16_matmul_gflops"] = Math.Round(bf16Rate / 1e9, 2),
                ["matmul_parameters"] = r.MatmulParameters,
                ["achieved_gflops_matmul_parameters"] = Math.Round(r.AchievedMatmulParameterFlops / 1e9, 2),
                ["ratio_to_matmul"] = Math.Round(r.RatioToMatmul, 3), ["ratio_to_bf16_matmul"] = Math.Round(r.AchievedFlops / bf16Rate, 3),
                ["ratio_to_bf16_matmul_matmul_parameters"] = Math.Round(r.AchievedMatmulParameterFlops / bf16Rate, 3),
            };
            results.Add(row);
            if (!a.Json)
                w.WriteLine($"{r.Model} {r.Dtype}: {r.TokensPerSecond:F0} tokens/s, {r.AchievedFlops / 1e9:F1} GFLOP/s achieved " +
                    $"= {r.RatioToMatmul:P0} of {r.Dtype} matmul ({mm / 1e9:F0} GFLOP/s), {r.AchievedFlops / bf16Rate:P0} of bf16 matmul ({bf16Rate / 1e9:F0} GFLOP/s); " +
                    $"counting only matmul parameters: {r.AchievedMatmulParameterFlops / 1e9:F1} GFLOP/s = {r.AchievedMatmulParameterFlops / bf16Rate:P0} of bf16 matmul");
        }
        if (a.Json) foreach (var r in results) w.WriteLine(JsonSerializer.Serialize(r));
        return 0;
    }
}
