using System.Globalization;
using System.Text.Json;
using Engine.Gguf;

namespace Engine.Cli.Commands;

public sealed class BenchExportCommand : ICliCommand
{
    public string Name => "bench export";
    public string Summary => "Measure GGUF export speed (F16, Q8_0) against plain file copies in the same run.";
    public string Usage => "bench export [--model DIR] [--work DIR] [--repeat N] [--json]";

    public int Run(CliArgs args)
    {
        string? model = args.String("model");
        string work = args.String("work") ?? Path.Combine(Path.GetTempPath(), $"engine-bench-export-{Environment.ProcessId}");
        int repeat = args.Int("repeat", min: 1) ?? 3;
        bool json = args.Flag("json");
        args.EnsureAllUsed();
        bool ownWork = args.String("work") is null;
        try
        {
            var r = GgufExportBenchmark.Run(model, work, repeat, json ? null : Console.Out);
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
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
                Console.WriteLine(string.Format(ci, "source: {0:N1} MB of F32 weights, {1} cores", r.SourceBytes / 1e6, r.Cores));
                Console.WriteLine(string.Format(ci, "copy (stream):  {0,8:N1} MB/s", r.StreamCopyMBps));
                Console.WriteLine(string.Format(ci, "copy (File.Copy): {0,6:N1} MB/s", r.FileCopyMBps));
                Console.WriteLine(string.Format(ci, "export f16:     {0,8:N1} MB/s  ({1:F2} × copy; goal ≥ 0.5)", r.ExportF16MBps, r.F16VsCopy));
                Console.WriteLine(string.Format(ci, "export q8_0:    {0,8:N1} MB/s  ({1:F2} × copy)", r.ExportQ8_0MBps, r.Q8_0VsCopy));
                Console.WriteLine(string.Format(ci, "quantize q4_K:  {0,8:N1} MB/s on 1 core, {1:N1} MB/s on {2} cores ({3:F2}×)",
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
