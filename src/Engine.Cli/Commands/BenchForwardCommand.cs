using System.Text.Json;
using Engine.Bench;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Cli.Commands;

public sealed class BenchForwardCommand : ICliCommand
{
    public string Name => "bench forward";
    public string Summary => "Forward+backward tokens/s of a preset model in f32 and bf16, next to the matmul rate.";
    public string Usage => "bench forward [--model-preset bench-25m] [--batch 4] [--seq-len 256] [--steps 3] [--dtype f32,bf16] [--json]";

    public int Run(CliArgs args)
    {
        string preset = args.String("model-preset") ?? "bench-25m";
        int batch = args.Int("batch", min: 1) ?? 4;
        int seqLen = args.Int("seq-len", min: 2) ?? 256;
        int steps = args.Int("steps", min: 1) ?? 3;
        var dtypes = (args.String("dtype") ?? "f32,bf16").Split(',').Select(TensorMemory.ParseDtype).ToList();
        bool json = args.Flag("json");
        args.EnsureAllUsed();

        var results = new List<object>();
        foreach (var dtype in dtypes)
        {
            double mm = MatmulRate.Measure(dtype);
            var r = ForwardBackwardBench.Run(preset, dtype, batch, seqLen, steps, mm);
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
            if (!json)
                Console.WriteLine($"{r.Model} {r.Dtype}: {r.TokensPerSecond:F0} tokens/s, {r.AchievedFlops / 1e9:F1} GFLOP/s achieved " +
                    $"= {r.RatioToMatmul:P0} of {r.Dtype} matmul ({mm / 1e9:F0} GFLOP/s), {r.AchievedFlops / bf16Rate:P0} of bf16 matmul ({bf16Rate / 1e9:F0} GFLOP/s); " +
                    $"counting only matmul parameters: {r.AchievedMatmulParameterFlops / 1e9:F1} GFLOP/s = {r.AchievedMatmulParameterFlops / bf16Rate:P0} of bf16 matmul");
        }
        if (json) foreach (var r in results) Console.WriteLine(JsonSerializer.Serialize(r));
        return 0;
    }
}
