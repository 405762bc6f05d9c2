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
}
