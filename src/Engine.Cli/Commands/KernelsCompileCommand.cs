using System.Text.Json;
using Engine.Cli.Options;
using Engine.Kernels.Cuda;
using Engine.Util;

namespace Engine.Cli.Commands;

/// <summary>`engine kernels compile`: the NVRTC compile check of the CUDA kernels, with registers and spills per architecture.</summary>
public sealed record KernelsCompileArgs(bool Json = false, IReadOnlyList<string>? Targets = null, string? OutDir = null);

public sealed class KernelsCompileCommand : CliCommand<KernelsCompileArgs>
{
    public override string Name => "kernels compile";
    public override string Summary => "Compile the CUDA kernels with NVRTC (cubin for sm_80/86/89/90, PTX); report registers and spills.";
    protected override KernelsCompileArgs Defaults => new();

    protected override IReadOnlyList<CliOption<KernelsCompileArgs>> Options { get; } = new[]
    {
        Opt<KernelsCompileArgs>.Flag("json", "print the table as JSON", a => a.Json, (a, v) => a with { Json = v }),
        Opt<KernelsCompileArgs>.List("arch", "targets to compile (default: cubin for sm_80/86/89/90 and PTX)", "sm_89,compute_80,...", (s, _) => s,
            a => a.Targets ?? Array.Empty<string>(), (a, v) => a with { Targets = v }, sample: "sm_89"),
        Opt<KernelsCompileArgs>.String("out", "also write the compiled images to this new folder", a => a.OutDir, (a, v) => a with { OutDir = v }, valueName: "DIR"),
    };

    protected override int Execute(Parsed<KernelsCompileArgs> parsed, CliContext context)
    {
        var (json, targets, outDir) = parsed.Value;
        var w = context.Out;
        if (outDir is not null && (Directory.Exists(outDir) || File.Exists(outDir)))
            throw new EngineException($"{outDir}: already exists; --out writes a new folder (nothing was changed)");
        if (!KernelCompiler.CompilerAvailable) throw new EngineException(KernelCompiler.CompilerUnavailableReason!);

        var images = new List<(string Name, byte[] Bytes)>();
        var rows = KernelCompiler.CompileAll(targets, outDir is null ? null : (name, bytes) => images.Add((name, bytes)));
        // A new folder only: an existing one may hold a user's files.
        if (outDir is not null)
            AtomicDirectory.Write(outDir, tmp =>
            {
                foreach (var (name, bytes) in images) File.WriteAllBytes(Path.Combine(tmp, name), bytes);
            });

        if (json)
        {
            var objects = rows.Select(r => JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["kernel"] = r.Kernel, ["arch"] = r.Arch, ["format"] = r.Format, ["registers"] = r.Registers,
                ["spill_bytes"] = r.SpillBytes, ["stack_bytes"] = r.StackBytes, ["shared_bytes"] = r.SharedBytes,
                ["source"] = r.Source, ["image_bytes"] = r.ImageBytes,
            }));
            w.WriteLine("[\n  " + string.Join(",\n  ", objects) + "\n]");
        }
        else
        {
            w.WriteLine($"{KernelCompiler.CompilerDescription}; CUDA driver: {(KernelCompiler.DriverAvailable ? "present" : "absent (kernels are compiled, not run)")}");
            w.WriteLine($"{"kernel",-28} {"arch",-11} {"format",-6} {"registers",9} {"spill bytes",11} {"smem bytes",10}");
            foreach (var r in rows)
                w.WriteLine($"{r.Kernel,-28} {r.Arch,-11} {r.Format,-6} {Show(r.Registers),9} {Show(r.SpillBytes),11} {Show(r.SharedBytes),10}");
            if (outDir is not null) w.WriteLine($"wrote {images.Count} images to {outDir}");
            w.WriteLine($"{KernelCompiler.Compilations} NVRTC compilations, the rest from the cache ({KernelCompiler.CacheDirectory ?? "in memory only"})");
        }
        int spilling = rows.Count(r => r.SpillBytes > 0);
        if (spilling > 0) context.Err.WriteLine($"warning: {spilling} kernel/architecture pairs spill registers");
        return 0;
    }

    static string Show(int? v) => v?.ToString() ?? "-";
}
