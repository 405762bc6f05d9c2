using System.Globalization;
using Engine.Adapters;
using Engine.Gguf;
using Engine.Cli.Options;
using Engine.Models;

namespace Engine.Cli.Commands;

public sealed record ExportArgs(string Model = "", string Output = "", string Type = "", string? Name = null, bool Force = false, bool NoValidate = false, bool Json = false,
    string? Adapter = null, bool LoraAdapter = false, string? BaseGguf = null);

public sealed class ExportCommand : CliCommand<ExportArgs>
{
    public override string Name => "export";
    public override string Summary => "Write a model as a llama.cpp GGUF file and check it in real llama.cpp.";
    protected override ExportArgs Defaults => new();

    protected override IReadOnlyList<CliOption<ExportArgs>> Options { get; } = new[]
    {
        Opt<ExportArgs>.String("model", "a Hugging Face folder or a GGUF file", a => a.Model, (a, v) => a with { Model = v }, valueName: "DIR|FILE.gguf", required: true),
        Opt<ExportArgs>.String("out", "the GGUF file to write", a => a.Output, (a, v) => a with { Output = v }, valueName: "FILE.gguf", required: true),
        Opt<ExportArgs>.Choice("type", "tensor type (the K-quants keep llama.cpp's per-tensor mix); not with --lora-adapter", GgufExportTypes.Names, v => v,
            a => a.Type, (a, v) => a with { Type = v }),
        Opt<ExportArgs>.String("adapter", "a PEFT LoRA adapter folder: merged into --model, or written alone with --lora-adapter", a => a.Adapter,
            (a, v) => a with { Adapter = v }, valueName: "DIR"),
        Opt<ExportArgs>.Flag("lora-adapter", "write --adapter as llama.cpp's LoRA adapter GGUF (applied on top of the base GGUF)", a => a.LoraAdapter,
            (a, v) => a with { LoraAdapter = v }),
        Opt<ExportArgs>.String("base-gguf", "with --lora-adapter: the base GGUF to validate on (default: --model if a GGUF, else a temporary f32 export)",
            a => a.BaseGguf, (a, v) => a with { BaseGguf = v }, valueName: "FILE.gguf"),
        Opt<ExportArgs>.String("name", $"{GgufKeys.ModelName} in the file (default: the model folder's name)", a => a.Name, (a, v) => a with { Name = v }, valueName: "NAME"),
        Opt<ExportArgs>.Flag("force", "replace an existing output file", a => a.Force, (a, v) => a with { Force = v }),
        Opt<ExportArgs>.Flag("no-validate", "write the file without checking it in llama.cpp", a => a.NoValidate, (a, v) => a with { NoValidate = v }),
        Opt<ExportArgs>.Flag("json", "print only the validation report, as one JSON object", a => a.Json, (a, v) => a with { Json = v }),
    };

    protected override int Execute(Parsed<ExportArgs> parsed, CliContext context)
    {
        var a = parsed.Value;
        if (a.LoraAdapter && a.Adapter is null) throw new UsageException("--lora-adapter writes an adapter: give it with --adapter DIR");
        if (a.LoraAdapter && a.Type.Length > 0) throw new UsageException("--type does not apply to --lora-adapter (the adapter is written in f32)");
        if (!a.LoraAdapter && a.Type.Length == 0) throw new UsageException("--type is required");
        if (a.BaseGguf != null && !a.LoraAdapter) throw new UsageException("--base-gguf applies to --lora-adapter");
        if (a.Adapter is null) return ExportModel(a, context, null);
        using var adapted = AdaptedModel.Load(a.Model, a.Adapter, TorchSharp.torch.ScalarType.Float32, requireTokenizer: true);
        return a.LoraAdapter ? ExportAdapter(a, context, adapted) : ExportModel(a, context, adapted);
    }

    static int ExportModel(ExportArgs a, CliContext context, AdaptedModel? adapted)
    {
        var (model, output, typeName, name, force, noValidate, json) = (a.Model, a.Output, a.Type, a.Name, a.Force, a.NoValidate, a.Json);
        var w = json ? TextWriter.Null : context.Out; // --json: stdout carries only the report
        var type = GgufExportTypes.Parse(typeName);
        string target = GgufExporter.CheckOutputPath(output, force);
        ValidationReport? report = null;
        var options = new GgufExportOptions
        {
            Type = type,
            Name = name ?? (adapted != null ? Path.GetFileName(Path.GetFullPath(a.Adapter!).TrimEnd('/')) : null),
            Force = force,
            BeforeRename = noValidate ? null : tmp => report = ValidateOrThrow(model, adapted, tmp, type, json, context.Out),
        };
        w.WriteLine($"exporting {model}{(adapted != null ? $" + {a.Adapter} (merged)" : "")} → {output} ({GgufExportTypes.Name(type)})");
        var result = adapted?.Adapters is { } adapters ? AdapterExport.Merged(model, adapters, target, options) : GgufExporter.Export(model, target, options);
        if (json) context.Out.WriteLine((report?.ToJson() ?? ValidationReport.SkippedJson(type)).ToJsonString());
        PrintSummary(result, w);
        if (report != null) w.WriteLine(report.Format());
        else w.WriteLine("validation skipped (--no-validate)");
        return 0;
    }

    static int ExportAdapter(ExportArgs a, CliContext context, AdaptedModel adapted)
    {
        var w = a.Json ? TextWriter.Null : context.Out;
        string name = a.Name ?? Path.GetFileName(Path.GetFullPath(a.Adapter!).TrimEnd('/'));
        w.WriteLine($"exporting {a.Adapter} → {a.Output} (llama.cpp LoRA adapter for {a.Model})");
        ValidationReport? report = null;
        GgufLoraAdapter.Write(a.Output, adapted.Adapters!, adapted.Base.Config, name, a.Force, a.NoValidate ? null : tmp =>
            report = AdapterExport.WithBaseGguf(a.Model, a.BaseGguf, a.Output, (baseGguf, type) =>
            {
                w.WriteLine($"validating on {baseGguf} + the adapter");
                var r = GgufValidator.Validate(adapted.Model, adapted.Base.RequireTokenizer(), baseGguf, type, adapter: new AppliedAdapter(tmp, adapted.Adapters!));
                if (!r.Passed)
                {
                    context.Out.WriteLine(a.Json ? r.ToJson().ToJsonString() : r.Format());
                    throw new EngineException($"the adapter failed validation in llama.cpp ({string.Join("; ", r.Failures)}); nothing was written to the output path (--no-validate writes it unchecked)");
                }
                return r;
            }));
        w.WriteLine($"tensors: {2 * adapted.Adapters!.Layers.Count} (lora_a/lora_b for {adapted.Adapters.Layers.Count} weights, F32), alpha {adapted.Adapters.Settings.Scaling * adapted.Adapters.Settings.Rank}");
        if (a.Json && report != null) context.Out.WriteLine(report.ToJson().ToJsonString());
        if (report != null) w.WriteLine(report.Format());
        else w.WriteLine("validation skipped (--no-validate)");
        return 0;
    }

    /// <summary>Runs before the file is renamed into place, so a file that fails never appears at the output path.</summary>
    /// <param name="adapted">the base with its adapter when exporting a merge: validation compares with the merged weights</param>
    static ValidationReport ValidateOrThrow(string model, AdaptedModel? adapted, string exportedFile, GgufExportType type, bool json, TextWriter w)
    {
        using var source = adapted?.Adapters is { } adapters ? AdapterExport.MergedModel(model, adapters)
            : ModelLoader.Load(model, TorchSharp.torch.ScalarType.Float32, requireTokenizer: true);
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
