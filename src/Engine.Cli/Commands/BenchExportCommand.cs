using System.Globalization;
using System.Text.Json;
using Engine.Bench;
using Engine.Cli.Options;

namespace Engine.Cli.Commands;

public sealed record BenchExportArgs(string? Model = null, string? Work = null, int Repeat = 3, bool Json = false);

public sealed class BenchExportCommand : CliCommand<BenchExportArgs>
{
    public override string Name => "bench export";
    public override string Summary => "Measure GGUF export speed (F16, Q8_0) against plain file copies in the same run.";
    protected override BenchExportArgs Defaults => new();

    protected override IReadOnlyList<CliOption<BenchExportArgs>> Options { get; } = new[]
    {
        Opt<BenchExportArgs>.String("model", "a model folder to export (default: a synthetic ~250 MB model)", a => a.Model, (a, v) => a with { Model = v }, valueName: "DIR"),
        Opt<BenchExportArgs>.String("work", "a new folder for the benchmark's files (default: a temporary folder, removed afterwards)", a => a.Work, (a, v) => a with { Work = v }, valueName: "DIR"),
        Opt<BenchExportArgs>.Int("repeat", "timed repeats of each measurement", a => a.Repeat, (a, v) => a with { Repeat = v }, min: 1),
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
            if (json)
            {
                w.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["source_bytes"] = r.SourceBytes,
                    ["cores"] = r.Cores,
                    ["stream_copy_mb_s"] = Math.Round(r.StreamCopyMBps, 1),
                    ["file_copy_mb_s"] = Math.Round(r.FileCopyMBps, 1),
                    ["export_f16_mb_s"] = Math.Round(r.ExportF16MBps, 1),
                    ["export_q8_0_mb_s"] = Math.Round(r.ExportQ8_0MBps, 1),
                    ["f16_vs_copy"] = Math.Round(r.F16VsCopy, 3),
                    ["q8_0_vs_copy"] = Math.Round(r.Q8_0VsCopy, 3),
                    ["quantize_q4_k_1_core_mb_s"] = Math.Round(r.QuantizeQ4KOneThreadMBps, 1),
                    ["quantize_q4_k_all_cores_mb_s"] = Math.Round(r.QuantizeQ4KAllThreadsMBps, 1),
                    ["quantize_speedup"] = Math.Round(r.QuantizeSpeedup, 2),
                    ["goal_f16_at_least_half_copy"] = r.F16VsCopy >= 0.5,
                }));
            }
            else
            {
                var ci = CultureInfo.InvariantCulture;
                w.WriteLine(string.Format(ci, "source: {0:N1} MB of F32 weights, {1} cores", r.SourceBytes / 1e6, r.Cores));
                w.WriteLine(string.Format(ci, "copy (stream):  {0,8:N1} MB/s", r.StreamCopyMBps));
                w.WriteLine(string.Format(ci, "copy (File.Copy): {0,6:N1} MB/s", r.FileCopyMBps));
                w.WriteLine(string.Format(ci, "export f16:     {0,8:N1} MB/s  ({1:F2} × copy; goal ≥ 0.5)", r.ExportF16MBps, r.F16VsCopy));
                w.WriteLine(string.Format(ci, "export q8_0:    {0,8:N1} MB/s  ({1:F2} × copy)", r.ExportQ8_0MBps, r.Q8_0VsCopy));
                w.WriteLine(string.Format(ci, "quantize q4_K:  {0,8:N1} MB/s on 1 core, {1:N1} MB/s on {2} cores ({3:F2}×)",
                    r.QuantizeQ4KOneThreadMBps, r.QuantizeQ4KAllThreadsMBps, r.Cores, r.QuantizeSpeedup));
            }
            return 0;
        }
        finally
        {
            if (ownWork && Directory.Exists(work)) Directory.Delete(work, true);
        }
    }
}
