using Engine.Gguf;

namespace Engine.Cli.Commands;

public sealed class BenchExportCommand : ICliCommand
{
    public string Name => "bench export";
    public string Summary => "Measure GGUF export speed (F16, BF16, Q8_0) against a plain file copy, in the same rounds.";
    public string Usage => "bench export [--model DIR] [--work DIR] [--repeat N (default 5)] [--json]";

    public int Run(CliArgs args)
    {
        string? model = args.String("model");
        string work = args.String("work") ?? Path.Combine(Path.GetTempPath(), $"engine-bench-export-{Environment.ProcessId}");
        int repeat = args.Int("repeat", min: 1) ?? 5;
        bool json = args.Flag("json");
        args.EnsureAllUsed();
        bool ownWork = args.String("work") is null;
        try
        {
            var r = GgufExportBenchmark.Run(model, work, repeat, json ? null : Console.Out);
            Console.WriteLine(json ? r.ToJson() : r.Describe());
            return 0;
        }
        finally
        {
            if (ownWork && Directory.Exists(work)) Directory.Delete(work, true);
        }
    }
}
