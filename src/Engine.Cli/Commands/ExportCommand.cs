using System.Globalization;
using Engine.Gguf;
using Engine.Models;

namespace Engine.Cli.Commands;

public sealed class ExportCommand : ICliCommand
{
    public string Name => "export";
    public string Summary => "Write a model as a llama.cpp GGUF file and check it in real llama.cpp.";
    public string Usage => "export --model DIR|FILE.gguf --out FILE.gguf --type f32|f16|bf16|q8_0|q4_0|q4_k_m|q6_k [--name NAME] [--force] [--no-validate] [--json]";

    public int Run(CliArgs args)
    {
        string model = args.RequiredString("model");
        string output = args.RequiredString("out");
        string typeName = args.RequiredString("type");
        string? name = args.String("name");
        bool force = args.Flag("force");
        bool validate = !args.Flag("no-validate");
        bool json = args.Flag("json"); // stdout then carries only the report object
        args.EnsureAllUsed();

        var type = GgufExportTypes.Parse(typeName);
        string target = GgufExporter.CheckOutputPath(output, force);
        ValidationReport? report = null;
        var options = new GgufExportOptions
        {
            Type = type,
            Name = name,
            Force = force,
            BeforeRename = validate ? tmp => report = ValidateOrThrow(model, tmp, type, json) : null,
        };
        if (!json) Console.WriteLine($"exporting {model} → {output} ({GgufExportTypes.Name(type)})");
        var result = GgufExporter.Export(model, target, options);
        if (json) { Console.WriteLine((report?.ToJson() ?? ValidationReport.SkippedJson(type)).ToJsonString()); return 0; }
        PrintSummary(result);
        if (report != null) Console.WriteLine(report.Format());
        else Console.WriteLine("validation skipped (--no-validate)");
        return 0;
    }

    /// <summary>Runs before the file is renamed into place, so a file that fails never appears at the output path.</summary>
    static ValidationReport ValidateOrThrow(string model, string exportedFile, GgufExportType type, bool json)
    {
        using var source = ModelLoader.Load(model, TorchSharp.torch.ScalarType.Float32, requireTokenizer: true);
        var report = GgufValidator.Validate(source.Model, source.RequireTokenizer(), exportedFile, type);
        if (!report.Passed)
        {
            Console.WriteLine(json ? report.ToJson().ToJsonString() : report.Format());
            throw new EngineException($"the exported file failed validation in llama.cpp ({string.Join("; ", report.Failures)}); nothing was written to the output path (--no-validate writes it unchecked)");
        }
        return report;
    }

    static void PrintSummary(GgufExportResult r)
    {
        var ci = CultureInfo.InvariantCulture;
        foreach (var n in r.Notices) Console.WriteLine(n);
        var counts = r.Tensors.GroupBy(t => t.Type).OrderByDescending(g => g.Count()).Select(g => $"{GgmlTypes.Name(g.Key)} {g.Count()}");
        Console.WriteLine($"tensors: {r.Tensors.Count} ({string.Join(", ", counts)})");
        var mixed = r.Tensors.Where(t => t.Note != null && !t.IsFallback).ToList();
        if (mixed.Count > 0)
        {
            Console.WriteLine("type mix:");
            foreach (var t in mixed) Console.WriteLine($"  {t.Name}: {t.Note}");
        }
        var fallbacks = r.Fallbacks.ToList();
        if (fallbacks.Count > 0)
        {
            Console.WriteLine($"fallbacks ({fallbacks.Count} tensors whose row length does not fit the block size):");
            foreach (var t in fallbacks) Console.WriteLine($"  {t.Name} [{string.Join(", ", t.Dims)}]: {t.Note}");
        }
        double seconds = Math.Max(1e-9, r.WriteTime.TotalSeconds);
        Console.WriteLine(string.Format(ci, "wrote {0:N1} MB in {1:F2} s ({2:N1} MB/s of F32 weights in, {3:N1} MB file)",
            r.SourceBytes / 1e6, seconds, r.SourceBytes / 1e6 / seconds, r.FileBytes / 1e6));
    }
}
