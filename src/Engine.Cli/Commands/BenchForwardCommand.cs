using System.Text.Json;
using Engine.Bench;
using Engine.Cli.Options;
using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Cli.Commands;

public sealed record BenchForwardArgs(string Preset = "bench-25m", int Batch = 4, int SeqLen = 256, int Repeat = 5, IReadOnlyList<string>? Dtypes = null, bool Json = false)
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
        Opt<BenchForwardArgs>.Int("repeat", "timed steps after a warm-up (min/median/max over them)", a => a.Repeat, (a, v) => a with { Repeat = v }, min: 1),
        Opt<BenchForwardArgs>.List("dtype", "compute dtypes", "f32,bf16", (s, what) => s is "f32" or "bf16" ? s : throw new UsageException($"{what} takes f32 and/or bf16 (got '{s}')"),
            a => a.Dtypes, (a, v) => a with { Dtypes = v }, sample: "f32"),
        Opt<BenchForwardArgs>.Flag("json", "one JSON object per dtype", a => a.Json, (a, v) => a with { Json = v }),
    };

    protected override int Execute(Parsed<BenchForwardArgs> parsed, CliContext context)
    {
        var a = parsed.Value;
        var w = context.Out;
        foreach (var dtype in a.Dtypes.Select(TensorMemory.ParseDtype))
        {
            string load = BenchmarkMachine.LoadAverage();
            var r = ForwardBackwardBench.Run(a.Preset, dtype, a.Batch, a.SeqLen, a.Repeat);
            var machine = BenchmarkMachine.Describe(get_num_threads(), load);
            var warnings = new[] { r.StepSeconds.WarningFor("the step time", machine), r.MatmulFlops.WarningFor($"the {r.Dtype} matmul rate", machine) }
                .OfType<string>().ToArray();
            if (a.Json)
            {
                w.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["model"] = r.Model, ["dtype"] = r.Dtype, ["parameters"] = r.Parameters, ["batch"] = r.Batch, ["seq_len"] = r.SeqLen,
                    ["repeat"] = a.Repeat,
                    ["tokens_per_s"] = r.TokensPerSecond.ToJson(1), ["step_s"] = r.StepSeconds.ToJson(4),
                    ["matmul_gflops"] = Scaled(r.MatmulFlops), ["bf16_matmul_gflops"] = Scaled(r.Bf16MatmulFlops),
                    ["achieved_gflops"] = Math.Round(r.AchievedFlops / 1e9, 2),
                    ["matmul_parameters"] = r.MatmulParameters,
                    ["achieved_gflops_matmul_parameters"] = Math.Round(r.AchievedMatmulParameterFlops / 1e9, 2),
                    // Ratios of medians: the step and the matmul were timed alternately, under the same load.
                    ["ratio_to_matmul"] = Math.Round(r.RatioToMatmul, 3), ["ratio_to_bf16_matmul"] = Math.Round(r.RatioToBf16Matmul, 3),
                    ["ratio_to_bf16_matmul_matmul_parameters"] = Math.Round(r.AchievedMatmulParameterFlops / r.Bf16MatmulFlops.Median, 3),
                    ["machine"] = machine.ToJson(), ["warnings"] = warnings,
                }));
            }
            else
            {
                w.WriteLine($"{r.Model} {r.Dtype}: {r.TokensPerSecond.Median:F0} tokens/s [{r.TokensPerSecond.Min:F0} – {r.TokensPerSecond.Max:F0}] over {a.Repeat} steps, " +
                    $"{r.AchievedFlops / 1e9:F1} GFLOP/s achieved = {r.RatioToMatmul:P0} of {r.Dtype} matmul ({r.MatmulFlops.Median / 1e9:F0} GFLOP/s), " +
                    $"{r.RatioToBf16Matmul:P0} of bf16 matmul ({r.Bf16MatmulFlops.Median / 1e9:F0} GFLOP/s); counting only matmul parameters: " +
                    $"{r.AchievedMatmulParameterFlops / 1e9:F1} GFLOP/s = {r.AchievedMatmulParameterFlops / r.Bf16MatmulFlops.Median:P0} of bf16 matmul");
                foreach (var warning in warnings) context.Err.WriteLine(warning);
            }
        }
        if (!a.Json) w.WriteLine($"machine: {BenchmarkMachine.Describe(get_num_threads(), BenchmarkMachine.LoadAverage())}");
        return 0;
    }

    static Dictionary<string, double> Scaled(Spread flops) => new Spread(flops.Min / 1e9, flops.Median / 1e9, flops.Max / 1e9).ToJson(2);
}
