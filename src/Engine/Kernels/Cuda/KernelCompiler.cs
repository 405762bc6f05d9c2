using System.Collections.Concurrent;
using System.Text.RegularExpressions;

namespace Engine.Kernels.Cuda;

/// <summary>Resources ptxas reports for one kernel on one architecture (null where the format has none: PTX).</summary>
public sealed record KernelResourceUsage(string Kernel, string Source, string Arch, string Format, int? Registers,
    int? SpillBytes, int? StackBytes, int? SharedBytes, int ImageBytes);

/// <summary>Compiles the embedded CUDA kernels with NVRTC: the build check (every architecture) and the run-time images.</summary>
public static partial class KernelCompiler
{
    /// <summary>The cubin targets: Ampere (A100, RTX 30xx), Ada (RTX 40xx) and Hopper.</summary>
    public static readonly IReadOnlyList<string> CubinArchitectures = new[] { "sm_80", "sm_86", "sm_89", "sm_90" };

    /// <summary>The PTX target: any newer GPU JIT-compiles it.</summary>
    public const string PtxArchitecture = "compute_80";

    public static bool CompilerAvailable => Nvrtc.IsAvailable;
    public static string? CompilerUnavailableReason => Nvrtc.UnavailableReason;
    /// <summary>Whether kernels could run here: the NVIDIA driver is present and initialises.</summary>
    public static bool DriverAvailable => CudaDriver.IsAvailable;
    public static string? DriverUnavailableReason => CudaDriver.UnavailableReason;

    /// <summary>NVRTC compilations this process actually ran; the others came from the cache (<see cref="NvrtcCache"/>).</summary>
    public static int Compilations => NvrtcCache.Compilations;
    public static string? CacheDirectory => NvrtcCache.Directory;

    public static string CompilerDescription => Nvrtc.IsAvailable ? $"NVRTC {Nvrtc.Version} ({Nvrtc.LibraryName})" : "NVRTC not available";

    /// <summary>The default targets of the compile check: every cubin architecture, then PTX.</summary>
    public static IReadOnlyList<string> DefaultTargets => CubinArchitectures.Append(PtxArchitecture).ToList();

    /// <summary>
    /// Compiles every kernel source for every target ("sm_XY": cubin, "compute_XY": PTX; default
    /// <see cref="DefaultTargets"/>). Throws EngineException (with the compiler log) on the first error; otherwise
    /// one entry per kernel and target. <paramref name="saveImage"/> receives each image with a file name such as
    /// token_logprob.sm_89.cubin.
    /// </summary>
    public static IReadOnlyList<KernelResourceUsage> CompileAll(IReadOnlyList<string>? targets = null, Action<string, byte[]>? saveImage = null)
    {
        targets ??= DefaultTargets;
        foreach (string t in targets)
            if (!TargetPattern().IsMatch(t))
                throw new EngineException($"unknown CUDA target '{t}' (expected sm_XY for a cubin or compute_XY for PTX, e.g. sm_89)");
        var rows = new List<KernelResourceUsage>();
        foreach (string file in KernelSources.Files)
        {
            string source = KernelSources.Read(file);
            string stem = Path.GetFileNameWithoutExtension(file);
            foreach (string arch in targets)
            {
                var output = Nvrtc.Compile(source, file, arch);
                saveImage?.Invoke($"{stem}.{arch}.{(output.IsCubin ? "cubin" : "ptx")}", output.IsCubin ? output.Image : output.Image[..^1]);
                if (output.IsCubin)
                {
                    var parsed = ParsePtxasReport(output.Log, file, arch, output.Image.Length);
                    foreach (string kernel in KernelSources.Kernels[file])
                        rows.Add(parsed.FirstOrDefault(p => p.Kernel == kernel)
                            ?? throw new EngineException($"ptxas reported nothing for kernel {kernel} of {file} on {arch}: is it still defined?\n{output.Log}"));
                }
                else
                {
                    string ptx = System.Text.Encoding.ASCII.GetString(output.Image);
                    foreach (string kernel in KernelSources.Kernels[file])
                    {
                        if (!ptx.Contains($".entry {kernel}(", StringComparison.Ordinal))
                            throw new EngineException($"the PTX of {file} for {arch} lacks the entry {kernel}");
                        rows.Add(new KernelResourceUsage(kernel, file, arch, "ptx", null, null, null, null, output.Image.Length));
                    }
                }
            }
        }
        return rows;
    }

    [GeneratedRegex(@"^(sm|compute)_\d{2,3}a?$")]
    private static partial Regex TargetPattern();
    [GeneratedRegex(@"Compiling entry function '(?<name>[^']+)' for '(?<arch>[^']+)'")]
    private static partial Regex EntryLine();
    [GeneratedRegex(@"(?<stack>\d+) bytes stack frame, (?<stores>\d+) bytes spill stores, (?<loads>\d+) bytes spill loads")]
    private static partial Regex SpillLine();
    [GeneratedRegex(@"Used (?<regs>\d+) registers(?:, (?<smem>\d+) bytes smem)?")]
    private static partial Regex UsageLine();

    /// <summary>Reads ptxas's -v report: per entry function, stack frame, spill stores + loads, registers, static shared memory.</summary>
    public static IReadOnlyList<KernelResourceUsage> ParsePtxasReport(string log, string source, string arch, int imageBytes)
    {
        var result = new List<KernelResourceUsage>();
        string? kernel = null;
        int? stack = null, spill = null;
        foreach (string line in log.Split('\n'))
        {
            if (EntryLine().Match(line) is { Success: true } entry)
            {
                kernel = entry.Groups["name"].Value;
                stack = spill = null;
            }
            else if (kernel != null && SpillLine().Match(line) is { Success: true } s)
            {
                stack = int.Parse(s.Groups["stack"].Value);
                spill = int.Parse(s.Groups["stores"].Value) + int.Parse(s.Groups["loads"].Value);
            }
            else if (kernel != null && UsageLine().Match(line) is { Success: true } u)
            {
                int shared = u.Groups["smem"].Success ? int.Parse(u.Groups["smem"].Value) : 0;
                result.Add(new KernelResourceUsage(kernel, source, arch, "cubin", int.Parse(u.Groups["regs"].Value), spill ?? 0, stack ?? 0, shared, imageBytes));
                kernel = null;
            }
        }
        return result;
    }

    static readonly ConcurrentDictionary<(string File, int Major, int Minor), byte[]> DeviceImages = new();

    /// <summary>
    /// The image to load on a device of compute capability major.minor: the cubin when it is one of ours, otherwise
    /// PTX (for that capability, capped at sm_90) for the driver to JIT-compile. Compiled once per process.
    /// </summary>
    internal static byte[] ImageForDevice(string file, int major, int minor) => DeviceImages.GetOrAdd((file, major, minor), key =>
    {
        string sm = $"sm_{key.Major}{key.Minor}";
        string arch = CubinArchitectures.Contains(sm) ? sm : $"compute_{Math.Min(key.Major * 10 + key.Minor, 90)}";
        return Nvrtc.Compile(KernelSources.Read(key.File), key.File, arch).Image;
    });
}
