using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Bench;
using Engine.Cli.Options;
using Engine.Distributed;
using Engine.Methods;
using Engine.Models;
using Engine.Training;
using Engine.Util;

namespace Engine.Cli.Commands;

/// <summary>The step to time (its method and reference mode are taken from the lists), and how.</summary>
public sealed record BenchTrainArgs(StepSettings Step, IReadOnlyList<AlignmentMethod> Methods, IReadOnlyList<ReferenceMode> ReferenceModes,
    int Steps = 5, bool Json = false, bool SingleProcess = false, IReadOnlyList<int>? Nproc = null, int? ThreadsPerRank = null,
    bool Profile = false)
{
    public IReadOnlyList<int> Ranks => Nproc ?? new[] { 1 };
}

/// <summary>tokens/s at N ranks ÷ (N × tokens/s at 1 rank), for one method and reference mode.</summary>
/// <param name="TokensPerSecond1">median tokens/s of the 1-rank run</param>
/// <param name="TokensPerSecondN">median tokens/s of the N-rank run (all ranks together)</param>
/// <param name="MatmulNormalizedEfficiency">the same ratio with each run's tokens/s divided by its own f32 matmul rate (timed
/// between its steps), which cancels much of a shared machine's changing load</param>
public sealed record ScalingResult(string Method, string ReferenceMode, int Ranks, double TokensPerSecond1, double TokensPerSecondN, double ScalingEfficiency,
    double MatmulNormalizedEfficiency);

public sealed class BenchTrainCommand : CliCommand<BenchTrainArgs>
{
    public override string Name => "bench train";
    public override string Summary => "Training tokens/s of a preset (random weights) through the trainer's own step, per method, reference mode and number of data-parallel ranks, with peak RSS.";
    protected override BenchTrainArgs Defaults => new(new StepSettings { Model = "bench-25m", MicroBatch = 4, MaxLength = 256 },
        new AlignmentMethod[] { AlignmentMethods.Dpo, AlignmentMethods.Kto }, new[] { ReferenceMode.Cached, ReferenceMode.Resident });

    static IEnumerable<CliOption<BenchTrainArgs>> Step(IEnumerable<CliOption<StepSettings>> o) => o.Lift<BenchTrainArgs>(a => a.Step, (a, s) => a with { Step = s });

    protected override IReadOnlyList<CliOption<BenchTrainArgs>> Options { get; } =
        Step(new[]
        {
            Opt<StepSettings>.Choice("model-preset", "the model shape (random weights)", ModelPresets.All.Keys.ToList(), v => v, s => s.Model, (s, v) => s with { Model = v }),
            StepOptions.MicroBatch, StepOptions.MaxLength, StepOptions.Precision, StepOptions.OptimizerStates, StepOptions.Checkpointing, StepOptions.Head, StepOptions.Kernels,
        }.Concat(StepOptions.ObjectiveKnobs))
        .Concat(new[]
        {
            Opt<BenchTrainArgs>.List("method", "methods to time", string.Join(",", AlignmentMethods.Names), (s, what) => Parse(s, what, AlignmentMethods.Parse),
                a => a.Methods, (a, v) => a with { Methods = v }, sample: "dpo", show: m => m.Name),
            Opt<BenchTrainArgs>.List("ref-mode", "reference handling to time", "cached,resident", (s, what) => Parse(s, what, v => Spelling.Parse<ReferenceMode>(v, what)),
                a => a.ReferenceModes, (a, v) => a with { ReferenceModes = v }, sample: "cached", show: m => Spelling.Of(m)),
            Opt<BenchTrainArgs>.Int("repeat", "timed steps after a warm-up step (min/median/max over them)", a => a.Steps, (a, v) => a with { Steps = v }, min: 1),
            Opt<BenchTrainArgs>.Flag("json", "one JSON object per configuration", a => a.Json, (a, v) => a with { Json = v }),
            Opt<BenchTrainArgs>.Flag("profile", "split the timed steps' time by op class (matmul, attention, norm, ...; adds markers, so a little slower)",
                a => a.Profile, (a, v) => a with { Profile = v }),
            Opt<BenchTrainArgs>.Flag("single-process", "run every configuration in this process (peak RSS is then shared)", a => a.SingleProcess, (a, v) => a with { SingleProcess = v }),
            Opt<BenchTrainArgs>.List("nproc", "data-parallel ranks to time (through Open MPI's mpirun), each with its own micro-batch; with 1 and N also the scaling efficiency",
                "N[,N...]", (s, what) => Opt<BenchTrainArgs>.ParseInt(s, what, min: 1), a => a.Ranks, (a, v) => a with { Nproc = v }, sample: "1"),
            Opt<BenchTrainArgs>.OptionalInt("threads-per-rank", "torch threads of each process (default: all cores for 1 rank, the cores shared out for N)",
                a => a.ThreadsPerRank, (a, v) => a with { ThreadsPerRank = v }, min: 1),
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
        if (Launch.UnderLauncher) return RunRank(a, context);
        if (a.SingleProcess && a.Ranks.Any(n => n > 1)) throw new UsageException("bench train: --nproc above 1 starts one process per rank, so it cannot go with --single-process");
        if (a.SingleProcess && a.ThreadsPerRank is int threads) TorchSharp.torch.set_num_threads(threads);
        foreach (var method in a.Methods)
            foreach (var mode in a.ReferenceModes)
            {
                var step = a.Step with { Method = method, Reference = mode };
                step.Validate();
                var byRanks = new Dictionary<int, TrainingBenchResult>();
                foreach (int n in a.Ranks.Distinct())
                {
                    string load = BenchmarkMachine.LoadAverage();
                    var result = byRanks[n] = a.SingleProcess ? TrainingBench.Run(step, a.Steps, profile: a.Profile) : RunChild(parsed, method, mode, n);
                    var machine = BenchmarkMachine.Describe(result.Threads > 0 ? result.Threads * result.Ranks : TorchSharp.torch.get_num_threads(), load);
                    var warnings = new[] { result.StepSeconds.WarningFor($"the {result.Method} step time", machine), result.MatmulGflops.WarningFor($"the {Spelling.Of(step.Precision)} matmul rate", machine) }
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
                        context.Out.WriteLine($"{result.Method} ({result.ReferenceMode} reference, {result.Ranks} rank{(result.Ranks > 1 ? "s" : "")} × {result.Threads} threads): " +
                            $"{result.TokensPerSecond.Median:F0} tokens/s [{result.TokensPerSecond.Min:F0} – {result.TokensPerSecond.Max:F0}] over {result.Steps} steps, " +
                            $"{result.AchievedGflops:F1} GFLOP/s (6N, N = {result.MatmulParameters / 1e6:F1}M matmul parameters; {result.AchievedGflopsWithAttention:F1} with attention) = {result.RatioToMatmul:P0} of {Spelling.Of(step.Precision)} matmul ({result.MatmulGflops.Median:F0} GFLOP/s), " +
                            $"peak RSS {result.PeakRssBytes / 1048576.0:F0} MiB (f32 weights {result.ModelBytes / 1048576.0:F0} MiB)");
                        foreach (var warning in warnings) context.Err.WriteLine(warning);
                        if (result.Profile is { } profile)
                        {
                            double total = profile.Values.Sum();
                            context.Out.WriteLine($"  {"op class",-11} {"ms/step",9} {"share",6}");
                            foreach (var (name, ms) in profile.OrderByDescending(kv => kv.Value))
                                context.Out.WriteLine($"  {name,-11} {ms,9:F1} {100 * ms / total,5:F1}%");
                        }
                    }
                }
                if (!byRanks.TryGetValue(1, out var one)) continue;
                foreach (var (n, r) in byRanks.Where(kv => kv.Key > 1))
                {
                    double t1 = one.TokensPerSecond.Median, tn = r.TokensPerSecond.Median;
                    var e = new ScalingResult(method.Name, Spelling.Of(mode), n, t1, tn, tn / (n * t1),
                        tn / r.MatmulGflops.Median / (n * t1 / one.MatmulGflops.Median));
                    if (a.Json) context.Out.WriteLine(JsonSerializer.Serialize(e, Json));
                    else context.Out.WriteLine($"{method.Name} ({Spelling.Of(mode)} reference): scaling efficiency at {n} ranks {e.ScalingEfficiency:F2} " +
                        $"({tn:F0} tokens/s vs {n} × {t1:F0}); {e.MatmulNormalizedEfficiency:F2} with each run's tokens/s over its own matmul rate");
                }
            }
        return 0;
    }

    /// <summary>One rank of an MPI child (the parent narrowed it to one method and reference mode); rank 0 prints the result.</summary>
    static int RunRank(BenchTrainArgs a, CliContext context)
    {
        using var ranks = Launch.Communicator();
        foreach (var method in a.Methods)
            foreach (var mode in a.ReferenceModes)
            {
                var result = TrainingBench.Run(a.Step with { Method = method, Reference = mode }, a.Steps, ranks, a.Profile);
                if (ranks.IsRoot) context.Out.WriteLine(JsonSerializer.Serialize(result, Json));
            }
        return 0;
    }

    /// <summary>Each configuration runs in fresh processes with the same options, so its peak RSS is its own; N ranks run under mpirun.</summary>
    static TrainingBenchResult RunChild(Parsed<BenchTrainArgs> parsed, AlignmentMethod method, ReferenceMode mode, int ranks)
    {
        var args = parsed.Args;
        // The parent's own arguments, minus the lists this child narrows to one configuration.
        var keep = new List<string> { "bench", "train", "--single-process", "--json", "--method", method.Name, "--ref-mode", Spelling.Of(mode) };
        for (int i = 0; i < args.Count; i++)
        {
            string x = args[i];
            if (x is "--method" or "--ref-mode" or "--nproc") { i++; continue; }
            if (x.StartsWith("--method=") || x.StartsWith("--ref-mode=") || x.StartsWith("--nproc=") || x is "--json" or "--single-process") continue;
            keep.Add(x);
        }
        if (ranks > 1) keep.Remove("--single-process");
        var (program, prefix) = LocalMpiJob.EngineCommand();
        ProcessStartInfo psi;
        if (ranks > 1) psi = Launch.LocalMpirun(ranks, program, prefix.Concat(keep), parsed.Value.ThreadsPerRank);
        else
        {
            psi = new ProcessStartInfo(program);
            foreach (var x in prefix.Concat(keep)) psi.ArgumentList.Add(x);
        }
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        string what = $"{method.Name}, {Spelling.Of(mode)}, {ranks} rank{(ranks > 1 ? "s" : "")}";
        if (p.ExitCode != 0) throw new EngineException($"bench train child ({what}) failed: {stderr.Result.Trim()}");
        string? json = output.Split('\n').Where(l => l.Contains('{')).Select(l => l[l.IndexOf('{')..].Trim()).LastOrDefault();
        return json is null ? throw new EngineException($"bench train child ({what}) printed no result: {output.Trim()}")
            : JsonSerializer.Deserialize<TrainingBenchResult>(json, Json)!;
    }
}
