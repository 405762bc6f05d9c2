using System.Text.Json;
using Engine.Kernels.Cuda;
using Engine.Util;

namespace Engine.Cli.Commands;

/// <summary>`engine kernels compile`: the NVRTC compile check of the CUDA kernels, with registers and spills per architecture.</summary>
public sealed class KernelsCompileCommand : ICliCommand
{
    public string Name => "kernels compile";
    public string Summary => "Compile the CUDA kernels with NVRTC (cubin for sm_80/86/89/90, PTX); report registers and spills.";
    public string Usage => "kernels compile [--json] [--arch sm_89,compute_80,...] [--out DIR]";

    public int Run(CliArgs args)
    {
        bool json = args.Flag("json");
        var targets = args.String("arch")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string? outDir = args.String("out");
        args.EnsureAllUsed();
        if (!KernelCompiler.CompilerAvailable) throw new EngineException(KernelCompiler.CompilerUnavailableReason!);

        var images = new List<(string Name, byte[] Bytes)>();
        var rows = KernelCompiler.CompileAll(targets, outDir is null ? null : (name, bytes) => images.Add((name, bytes)));
        if (outDir is not null)
            AtomicDirectory.Write(outDir, tmp =>
            {
                foreach (var (name, bytes) in images) File.WriteAllBytes(Path.Combine(tmp, name), bytes);
            }, replace: true);

        if (json)
        {
            var objects = rows.Select(r => JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["kernel"] = r.Kernel, ["arch"] = r.Arch, ["format"] = r.Format, ["registers"] = r.Registers,
                ["spill_bytes"] = r.SpillBytes, ["stack_bytes"] = r.StackBytes, ["shared_bytes"] = r.SharedBytes,
                ["source"] = r.Source, ["image_bytes"] = r.ImageBytes,
            }));
            Console.WriteLine("[\n  " + string.Join(",\n  ", objects) + "\n]");
        }
        else
        {
            Console.WriteLine($"{KernelCompiler.CompilerDescription}; CUDA driver: {(KernelCompiler.DriverAvailable ? "present" : "absent (kernels are compiled, not run)")}");
            Console.WriteLine($"{"kernel",-28} {"arch",-11} {"format",-6} {"registers",9} {"spill bytes",11} {"smem bytes",10}");
            foreach (var r in rows)
                Console.WriteLine($"{r.Kernel,-28} {r.Arch,-11} {r.Format,-6} {Show(r.Registers),9} {Show(r.SpillBytes),11} {Show(r.SharedBytes),10}");
            if (outDir is not null) Console.WriteLine($"wrote {images.Count} images to {outDir}");
            Console.WriteLine($"{KernelCompiler.Compilations} NVRTC compilations, the rest from the cache ({KernelCompiler.CacheDirectory ?? "in memory only"})");
        }
        int spilling = rows.Count(r => r.SpillBytes > 0);
        if (spilling > 0) Console.Error.WriteLine($"warning: {spilling} kernel/architecture pairs spill registers");
        return 0;
    }

    static string Show(int? v) => v?.ToString() ?? "-";
}
