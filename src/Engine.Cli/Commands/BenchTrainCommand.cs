using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Bench;
using Engine.Cli.Options;
using Engine.Methods;
using Engine.Models;
using Engine.Training;
using Engine.Util;

namespace Engine.Cli.Commands;

/// <summary>The step to time (its method and reference mode are taken from the lists), and how.</summary>
public sealed record BenchTrainArgs(StepSettings Step, IReadOnlyList<AlignmentMethod> Methods, IReadOnlyList<ReferenceMode> ReferenceModes,
    int Steps = 5, bool Json = false, bool SingleProcess = false);

public sealed class BenchTrainCommand : CliCommand<BenchTrainArgs>
{
    public override string Name => "bench train";
    public override string Summary => "Training tokens/s of a preset (random weights) through the trainer's own step, per method and reference mode, with peak RSS.";
    protected override BenchTrainArgs Defaults => new(new StepSettings { Model = "bench-25m", MicroBatch = 4, MaxLength = 256 },
        new AlignmentMethod[] { AlignmentMethods.Dpo, AlignmentMethods.Kto }, new[] { ReferenceMode.Cached, ReferenceMode.Resident });

    static IEnumerable<CliOption<BenchTrainArgs>> Step(IEnumerable<CliOption<StepSettings>> o) => o.Lift<BenchTrainArgs>(a => a.Step, (a, s) => a with { Step = s });

    protected override IReadOnlyList<CliOption<BenchTrainArgs>> Options { get; } =
        Step(new[]
        {
            Opt<StepSettings>.Choice("model-preset", "the model shape (random weights)", ModelPresets.All.Keys.ToList(), v => v, s => s.Model, (s, v) => s with { Model = v }),
            StepOptions.MicroBatch, StepOptions.MaxLength, StepOptions.Precision, StepOptions.OptimizerStates, StepOptions.Checkpointing, StepOptions.Head,
        }.Concat(StepOptions.ObjectiveKnobs))
        .Concat(new[]
        {
            Opt<BenchTrainArgs>.List("method", "methods to time", string.Join(",", AlignmentMethods.Names), (s, what) => Parse(s, what, AlignmentMethods.Parse),
                a => a.Methods, (a, v) => a with { Methods = v }, sample: "dpo", show: m => m.Name),
            Opt<BenchTrainArgs>.List("ref-mode", "reference handling to time", "cached,resident", (s, what) => Parse(s, what, v => Spelling.Parse<ReferenceMode>(v, what)),
                a => a.ReferenceModes, (a, v) => a with { ReferenceModes = v }, sample: "cached", show: m => Spelling.Of(m)),
            Opt<BenchTrainArgs>.Int("repeat", "timed steps after a warm-up step (min/median/max over them)", a => a.Steps, (a, v) => a with { Steps = v }, min: 1),
            Opt<BenchTrainArgs>.Flag("json", "one JSON object per configuration", a => a.Json, (a, v) => a with { Json = v }),
            Opt<BenchTrainArgs>.Flag("single-process", "run every configuration in this process (peak RSS is then shared)", a => a.SingleProcess, (a, v) => a with { SingleProcess = v }),
        }).ToList();

    static T Parse<T>(string s, string what, Func<string, T> parse)
    {
        try { return parse(s); }
        catch (EngineException e) { throw new UsageException($"{what}: {e.Message}"); }
    }

    static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    protected override int Execute(Parsed<BenchTrainArgs> parsed, CliContext context)
    {
        var a = parsed.Value;
        foreach (var method in a.Methods)
            foreach (var mode in a.ReferenceModes)
            {
                var step = a.Step with { Method = method, Reference = mode };
                step.Validate();
                string load = BenchmarkMachine.LoadAverage();
                var result = a.SingleProcess ? TrainingBench.Run(step, a.Steps) : RunChild(parsed, method, mode);
                var machine = BenchmarkMachine.Describe(TorchSharp.torch.get_num_threads(), load);
                var warnings = new[] { result.StepSeconds.WarningFor($"the {result.Method} step time", machine), result.MatmulGflops.WarningFor("the f32 matmul rate", machine) }
                    .OfType<string>().ToArray();
                if (a.Json)
                {
                    var row = JsonSerializer.SerializeToNode(result, Json)!.AsObject();
                    row["machine"] = JsonSerializer.SerializeToNode(machine.ToJson());
                    row["warnings"] = JsonSerializer.SerializeToNode(warnings);
                    context.Out.WriteLine(row.ToJsonString());
                }
                else
                {
                    context.Out.WriteLine($"{result.Method} ({result.ReferenceMode} reference): {result.TokensPerSecond.Median:F0} tokens/s " +
                        $"[{result.TokensPerSecond.Min:F0} – {result.TokensPerSecond.Max:F0}] over {result.Steps} steps, " +
                        $"{result.AchievedGflops:F1} GFLOP/s (6N) = {result.RatioToMatmul:P0} of f32 matmul ({result.MatmulGflops.Median:F0} GFLOP/s), " +
                        $"peak RSS {result.PeakRssBytes / 1048576.0:F0} MiB (f32 weights {result.ModelBytes / 1048576.0:F0} MiB)");
                    foreach (var warning in warnings) context.Err.WriteLine(warning);
                }
            }
        return 0;
    }

    /// <summary>Each configuration runs in a fresh process with the same options, so its peak RSS is its own.</summary>
    static TrainingBenchResult RunChild(Parsed<BenchTrainArgs> parsed, AlignmentMethod method, ReferenceMode mode)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in Environment.GetCommandLineArgs().Take(1)) if (arg.EndsWith(".dll")) psi.ArgumentList.Add(arg);
        var args = parsed.Args;
        // The parent's own arguments, minus the lists this child narrows to one configuration.
        var keep = new List<string> { "bench", "train", "--single-process", "--json", "--method", method.Name, "--ref-mode", Spelling.Of(mode) };
        for (int i = 0; i < args.Count; i++)
        {
            string x = args[i];
            if (x is "--method" or "--ref-mode") { i++; continue; }
            if (x.StartsWith("--method=") || x.StartsWith("--ref-mode=") || x is "--json" or "--single-process") continue;
            keep.Add(x);
        }
        foreach (var x in keep) psi.ArgumentList.Add(x);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new EngineException($"bench train child ({method.Name}, {Spelling.Of(mode)}) failed: {stderr.Result.Trim()}");
        return JsonSerializer.Deserialize<TrainingBenchResult>(output.Trim().Split('\n').Last(), Json)!;
    }
}
