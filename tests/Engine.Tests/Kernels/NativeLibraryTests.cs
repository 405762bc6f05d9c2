using Engine.Kernels;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Kernels;

public class NativeLibraryTests
{
    [Fact]
    public void MissingLibraryErrorSaysHowToBuildIt()
    {
        string? error = NativeKernels.ProbeError(new[] { "/nonexistent/dir/libengine_native.so" });
        Assert.NotNull(error);
        Assert.Contains("./build.sh", error);
        Assert.Contains("/nonexistent/dir/libengine_native.so", error);
    }

    [Fact]
    public void LibraryIsFoundAndUsesTheBestInstructionSet()
    {
        Assert.True(NativeKernels.IsAvailable);
        Assert.Null(NativeKernels.ProbeError(new[] { NativeKernels.LoadedFrom! }));
        // The automatic choice: AVX-512 where the CPU has it (Zen 4 here), else AVX2, else scalar. (Forcing an ISA is
        // covered by ctest, which runs every ISA; doing it here would race with the other kernel tests.)
        string expected = System.Runtime.Intrinsics.X86.Avx512BW.IsSupported && System.Runtime.Intrinsics.X86.Avx512DQ.IsSupported ? "avx512"
            : System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported ? "avx2" : "scalar";
        Assert.Equal(expected, NativeKernels.IsaName);
    }

    /// <summary>
    /// The fused kernels round bf16 with AVX512-BF16's instruction exactly where the CPU lists avx512_bf16 and the
    /// automatic ISA is avx512 (this Zen 4 has it), and a process started with ENGINE_NATIVE_AVX512BF16=0 uses the
    /// integer rounding (its kernels are checked against the formulas by ctest's *_plain_avx512 cases).
    /// </summary>
    [Fact]
    public void Bf16ConversionsUseTheInstructionWhereTheCpuHasIt()
    {
        bool listed = File.Exists("/proc/cpuinfo") && File.ReadLines("/proc/cpuinfo")
            .Where(l => l.StartsWith("flags", StringComparison.Ordinal)).Take(1)
            .Any(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains("avx512_bf16"));
        string expected = listed && NativeKernels.IsaName == "avx512" ? "avx512bf16" : "integer";
        Assert.Equal(expected, NativeKernels.Bf16Conversions);

        var off = CliRunner.RunWith(null, TimeSpan.FromMinutes(5), new Dictionary<string, string> { ["ENGINE_NATIVE_AVX512BF16"] = "0" },
            "bench", "kernels", "--case", "rmsnorm", "--dtype", "bf16", "--tokens", "64", "--repeat", "1", "--json");
        Assert.True(off.ExitCode == 0, off.Stderr);
        Assert.Contains("\"bf16_conversions\":\"integer\"", off.Stdout);
    }

    /// <summary>The thread rule: the native pool follows torch's intra-op thread count, also after it changes.</summary>
    [Fact]
    public void WorkerPoolFollowsTorchThreadCount()
    {
        if (Environment.GetEnvironmentVariable("ENGINE_NATIVE_THREADS") is { Length: > 0 }) return; // pinned by the user: the rule is off
        int original = TorchSharp.torch.get_num_threads();
        try
        {
            Assert.Equal(original, NativeKernels.Threads);
            TorchSharp.torch.set_num_threads(original + 1);
            using var logits = TorchSharp.torch.randn(4, 300);
            using var labels = TorchSharp.torch.tensor(new long[] { 1, 2, 3, 4 });
            var (lp, stats, means) = LogProbKernels.Forward(logits, labels);
            lp.Dispose(); stats.Dispose(); means.Dispose();
            Assert.Equal(original + 1, NativeKernels.Threads);
            NativeKernels.Threads = 1; // pinned: torch's count no longer applies
            TorchSharp.torch.set_num_threads(original);
            Assert.Equal(1, NativeKernels.Threads);
        }
        finally
        {
            TorchSharp.torch.set_num_threads(original);
            NativeKernels.Threads = 0;
        }
        Assert.Equal(original, NativeKernels.Threads);
    }
    /// <summary>
    /// The kernels' parallel work runs on the OpenMP runtime libtorch loaded (its bundled libgomp, beside
    /// libtorch_cpu.so), not on a second pool competing with libtorch's spinning workers; results are unchanged.
    /// </summary>
    [Fact]
    public void KernelsRunOnLibtorchsOpenMpThreads()
    {
        if (Environment.GetEnvironmentVariable("ENGINE_NATIVE_OPENMP") == "0") return; // the user chose the own workers
        string? runtime = NativeKernels.ThreadRuntime;
        Assert.NotNull(runtime);
        Assert.StartsWith("libgomp", Path.GetFileName(runtime));
        // The one libtorch itself uses: mapped from the folder libtorch_cpu.so was loaded from.
        string torchDir = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && Path.GetFileName(f[^1]) == "libtorch_cpu.so").Select(f => Path.GetDirectoryName(f[^1])!).First();
        Assert.Equal(torchDir, Path.GetDirectoryName(runtime));
        // A row-parallel kernel on that team equals the composite.
        using var logits = TorchSharp.torch.randn(512, 300);
        using var labels = TorchSharp.torch.randint(0, 300, new long[] { 512 });
        var (lp, stats, means) = LogProbKernels.Forward(logits, labels);
        using var expected = TorchSharp.torch.nn.functional.log_softmax(logits, 1).gather(1, labels.unsqueeze(1)).squeeze(1);
        Assert.True(lp.allclose(expected, rtol: 1e-5, atol: 1e-5));
        lp.Dispose(); stats.Dispose(); means.Dispose();
    }
}
