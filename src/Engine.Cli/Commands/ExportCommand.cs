using System.Globalization;
using Engine.Gguf;
using Engine.Cli.Options;
using Engine.Models;

namespace Engine.Cli.Commands;

public sealed record ExportArgs(string Model = "", string Output = "", string Type = "", string? Name = null, bool Force = false, bool NoValidate = false, bool Json = false);

public sealed class ExportCommand : CliCommand<ExportArgs>
{
    public override string Name => "export";
    public override string Summary => "Write a model as a llama.cpp GGUF file and check it in real llama.cpp.";
    protected override ExportArgs Defaults => new();

    protected override IReadOnlyList<CliOption<ExportArgs>> Options { get; } = new[]
    {
        Opt<ExportArgs>.String("model", "a Hugging Face folder or a GGUF file", a => a.Model, (a, v) => a with { Model = v }, valueName: "DIR|FILE.gguf", required: true),
        Opt<ExportArgs>.String("out", "the GGUF file to write", a => a.Output, (a, v) => a with { Output = v }, valueName: "FILE.gguf", required: true),
        Opt<ExportArgs>.Choice("type", "tensor type (the K-quants keep llama.cpp's per-tensor mix)", GgufExportTypes.Names, v => v,
            a => a.Type, (a, v) => a with { Type = v }, required: true),
        Opt<ExportArgs>.String("name", $"{GgufKeys.ModelName} in the file (default: the model folder's name)", a => a.Name, (a, v) => a with { Name = v }, valueName: "NAME"),
        Opt<ExportArgs>.Flag("force", "replace an existing output file", a => a.Force, (a, v) => a with { Force = v }),
        Opt<ExportArgs>.Flag("no-validate", "write the file without checking it in llama.cpp", a => a.NoValidate, (a, v) => a with { NoValidate = v }),
        Opt<ExportArgs>.Flag("json", "print only the validation report, as one JSON object", a => a.Json, (a, v) => a with { Json = v }),
    };

    protected override int Execute(Parsed<ExportArgs> parsed, CliContext context)
    {
        var (model, output, typeName, name, force, noValidate, json) = parsed.Value;
        var w = json ? TextWriter.Null : context.Out; // --json: stdout carries only the report
        var type = GgufExportTypes.Parse(typeName);
        string target = GgufExporter.CheckOutputPath(output, force);
        ValidationReport? report = null;
        var options = new GgufExportOptions
        {
            Type = type,
            Name = name,
            Force = force,
            BeforeRename = noValidate ? null : tmp => report = ValidateOrThrow(model, tmp, type, json, context.Out),
        };
        w.WriteLine($"exporting {model} → {output} ({GgufExportTypes.Name(type)})");
        var result = GgufExporter.Export(model, target, options);
        if (json) context.Out.WriteLine((report?.ToJson() ?? ValidationReport.SkippedJson(type)).ToJsonString());
        PrintSummary(result, w);
        if (report != null) w.WriteLine(report.Format());
        else w.WriteLine("validation skipped (--no-validate)");
        return 0;
    }

    /// <summary>Runs before the file is renamed into place, so a file that fails never appears at the output path.</summary>
    static ValidationReport ValidateOrThrow(string model, string exportedFile, GgufExportType type, bool json, TextWriter w)
    {
        using var source = ModelLoader.Load(model, TorchSharp.torch.ScalarType.Float32, requireTokenizer: true);
        var report = GgufValidator.Validate(source.Model, source.RequireTokenizer(), exportedFile, type);
        if (!report.Passed)
        {
            w.WriteLine(json ? report.ToJson().ToJsonString() : report.Format());
            throw new EngineException($"the exported file failed validation in llama.cpp ({string.Join("; ", report.Failures)}); nothing was written to the output path (--no-validate writes it unchecked)");
        }
        return report;
    }

    static void PrintSummary(GgufExportResult r, TextWriter w)
    {
        var ci = CultureInfo.InvariantCulture;
        foreach (var n in r.Notices) w.WriteLine(n);
        var counts = r.Tensors.GroupBy(t => t.Type).OrderByDescending(g => g.Count()).Select(g => $"{GgmlTypes.Name(g.Key)} {g.Count()}");
        w.WriteLine($"tensors: {r.Tensors.Count} ({string.Join(", ", counts)})");
        var mixed = r.Tensors.Where(t => t.Note != null && !t.IsFallback).ToList();
        if (mixed.Count > 0)
        {
            w.WriteLine("type mix:");
            foreach (var t in mixed) w.WriteLine($"  {t.Name}: {t.Note}");
        }
        var fallbacks = r.Fallbacks.ToList();
        if (fallbacks.Count > 0)
        {
            w.WriteLine($"fallbacks ({fallbacks.Count} tensors whose row length does not fit the block size):");
            foreach (var t in fallbacks) w.WriteLine($"  {t.Name} [{string.Join(", ", t.Dims)}]: {t.Note}");
        }
        double seconds = Math.Max(1e-9, r.WriteTime.TotalSeconds);
        w.WriteLine(string.Format(ci, "wrote {0:N1} MB in {1:F2} s ({2:N1} MB/s of F32 weights in, {3:N1} MB file)",
            r.SourceBytes / 1e6, seconds, r.SourceBytes / 1e6 / seconds, r.FileBytes / 1e6));
    }
}
