using System.Diagnostics;
using System.Text.Json;
using Engine.Bench;
using Engine.Training;

namespace Engine.Cli.Commands;

public sealed class BenchTrainCommand : ICliCommand
{
    public string Name => "bench train";
    public string Summary => "DPO/KTO training tokens/s on a preset with cached vs resident reference, peak RSS, matmul rate.";
    public string Usage => "bench train [--model-preset bench-25m] [--method dpo,kto] [--ref-mode cached,resident] [--micro-batch 4] [--seq-len 256] [--steps 3] [--json]";

    public int Run(CliArgs args)
    {
        string preset = args.String("model-preset") ?? "bench-25m";
        var methods = (args.String("method") ?? "dpo,kto").Split(',');
        var modes = (args.String("ref-mode") ?? "cached,resident").Split(',');
        int microBatch = args.Int("micro-batch", min: 1) ?? 4;
        int seqLen = args.Int("seq-len", min: 8) ?? 256;
        int steps = args.Int("steps", min: 1) ?? 3;
        bool json = args.Flag("json");
        bool single = args.Flag("single-process");
        args.EnsureAllUsed();
        foreach (var m in methods) if (m is not ("dpo" or "kto")) throw new UsageException($"bench train: --method takes dpo and/or kto (got '{m}')");
        foreach (var m in modes) if (m is not ("cached" or "resident")) throw new UsageException($"bench train: --ref-mode takes cached and/or resident (got '{m}')");

        string work = Path.Combine(Path.GetTempPath(), $"engine-bench-train-{Environment.ProcessId}");
        try
        {
            foreach (var method in methods)
                foreach (var mode in modes)
                {
                    var result = single
                        ? TrainingBench.Run(method, mode == "cached" ? ReferenceMode.Cached : ReferenceMode.Resident, preset, microBatch, seqLen, steps, Path.Combine(work, method + mode))
                        : RunChild(preset, method, mode, microBatch, seqLen, steps);
                    if (json) Console.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
                    else Console.WriteLine($"{result.Method} ({result.ReferenceMode} reference): {result.TokensPerSecond:F0} tokens/s, " +
                        $"{result.AchievedGflops:F1} GFLOP/s (6N) vs f32 matmul {result.MatmulGflops:F0} GFLOP/s, peak RSS {result.PeakRssBytes / 1048576.0:F0} MiB " +
                        $"(f32 weights {result.ModelBytes / 1048576.0:F0} MiB)");
                }
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, true);
        }
        return 0;
    }

    /// <summary>Each configuration runs in a fresh process so its peak RSS is its own.</summary>
    static TrainingBenchResult RunChild(string preset, string method, string mode, int microBatch, int seqLen, int steps)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in Environment.GetCommandLineArgs().Take(1)) if (a.EndsWith(".dll")) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "bench", "train", "--single-process", "--json", "--model-preset", preset, "--method", method, "--ref-mode", mode,
                     "--micro-batch", microBatch.ToString(), "--seq-len", seqLen.ToString(), "--steps", steps.ToString() })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new EngineException($"bench train child ({method}, {mode}) failed: {stderr.Result.Trim()}");
        return JsonSerializer.Deserialize<TrainingBenchResult>(output.Trim().Split('\n').Last(), new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower })!;
    }
}
