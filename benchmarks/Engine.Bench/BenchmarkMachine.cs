using System.Runtime.Intrinsics.X86;
using Engine.Gguf.Quantization;
using Engine.Kernels;

namespace Engine.Bench;

/// <summary>
/// The machine a benchmark ran on, and how busy it was: every quick benchmark's JSON carries it, because a figure
/// from a shared machine means little without the load it was measured under.
/// </summary>
public sealed record BenchmarkMachine(string Cpu, int Cores, string VectorIsa, int Threads, double AvailableMemoryGiB,
    string LoadAverageBefore, string LoadAverageAfter)
{
    /// <param name="threads">The threads the measured code ran on (export workers, kernel or libtorch threads).</param>
    public static BenchmarkMachine Describe(int threads, string loadBefore) => new(
        CpuModel(), Environment.ProcessorCount, DescribeIsa(), threads, ReadAvailableMemoryGiB(), loadBefore, LoadAverage());

    /// <summary>The 1, 5 and 15-minute load averages (Linux), or "unknown".</summary>
    public static string LoadAverage() => ReadFirstLine("/proc/loadavg") is string l ? string.Join(' ', l.Split(' ').Take(3)) : "unknown";

    public Dictionary<string, object> ToJson() => new()
    {
        ["cpu"] = Cpu, ["cores"] = Cores, ["isa"] = VectorIsa, ["threads"] = Threads,
        ["available_memory_gib"] = AvailableMemoryGiB, ["load_before"] = LoadAverageBefore, ["load_after"] = LoadAverageAfter,
    };

    public override string ToString() =>
        $"{Cpu}, {Cores} cores, {VectorIsa}, {Threads} threads, {AvailableMemoryGiB:F1} GiB available, load {LoadAverageBefore} → {LoadAverageAfter}";

    static string CpuModel() =>
        File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name")) is string line
            ? line[(line.IndexOf(':') + 1)..].Trim() : System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();

    static string DescribeIsa()
    {
        string conversions = FloatCodecs.Widest switch { SimdWidth.V512 => "Vector512", SimdWidth.V256 => "Vector256", _ => "scalar" };
        string features = string.Join(",", new[] { ("avx512f", Avx512F.IsSupported), ("avx512bw", Avx512BW.IsSupported), ("avx2", Avx2.IsSupported) }
            .Where(f => f.Item2).Select(f => f.Item1));
        string kernels = !NativeKernels.IsAvailable ? ""
            : $"; native kernels {NativeKernels.IsaName} on {(NativeKernels.ThreadRuntime is string omp ? $"libtorch's OpenMP threads ({Path.GetFileName(omp)})" : "their own threads")}";
        return $"{conversions} conversions ({(features.Length > 0 ? features : "no x86 vector extensions")}){kernels}";
    }

    static double ReadAvailableMemoryGiB()
    {
        if (File.Exists("/proc/meminfo") && File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:")) is string l
            && long.TryParse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], out long kib))
            return Math.Round(kib / 1048576.0, 1);
        return Math.Round(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1073741824.0, 1);
    }

    static string? ReadFirstLine(string path) => File.Exists(path) ? File.ReadLines(path).FirstOrDefault() : null;
}
