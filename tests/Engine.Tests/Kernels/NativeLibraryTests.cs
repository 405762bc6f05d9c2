using Engine.Kernels;

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
}
