using Engine.Bench;
using Engine.Cli.Options;

namespace Engine.Cli.Commands;

public sealed record BenchExportArgs(string? Model = null, string? Work = null, int Repeat = 5, bool Json = false);

public sealed class BenchExportCommand : CliCommand<BenchExportArgs>
{
    public override string Name => "bench export";
    public override string Summary => "Measure GGUF export speed (F16, BF16, Q8_0) against a plain file copy, in the same rounds.";
    protected override BenchExportArgs Defaults => new();

    protected override IReadOnlyList<CliOption<BenchExportArgs>> Options { get; } = new[]
    {
        Opt<BenchExportArgs>.String("model", "a model folder to export (default: a synthetic ~250 MB model)", a => a.Model, (a, v) => a with { Model = v }, valueName: "DIR"),
        Opt<BenchExportArgs>.String("work", "a new folder for the benchmark's files (default: a temporary folder, removed afterwards)", a => a.Work, (a, v) => a with { Work = v }, valueName: "DIR"),
        Opt<BenchExportArgs>.Int("repeat", "timed rounds (each runs the copy and every export once)", a => a.Repeat, (a, v) => a with { Repeat = v }, min: 1),
        Opt<BenchExportArgs>.Flag("json", "print the result as JSON", a => a.Json, (a, v) => a with { Json = v }),
    };

    protected override int Execute(Parsed<BenchExportArgs> parsed, CliContext context)
    {
        var (model, workDir, repeat, json) = parsed.Value;
        var w = context.Out;
        bool ownWork = workDir is null;
        // The benchmark writes and removes files by fixed names, so it only works in a folder of its own.
        if (workDir is not null && Directory.Exists(workDir) && Directory.EnumerateFileSystemEntries(workDir).Any())
            throw new EngineException($"{workDir}: --work must be a new or empty folder (the benchmark writes and deletes files there)");
        string work = workDir ?? Path.Combine(Path.GetTempPath(), $"engine-bench-export-{Environment.ProcessId}");
        try
        {
            var r = GgufExportBenchmark.Run(model, work, repeat, json ? null : w);
            w.WriteLine(json ? r.ToJson() : r.Describe());
            return 0;
        }
        finally
        {
            if (ownWork && Directory.Exists(work)) Directory.Delete(work, true);
        }
    }
}
