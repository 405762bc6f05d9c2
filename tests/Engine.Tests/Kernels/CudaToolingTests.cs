using Engine.Kernels;
using Engine.Kernels.Cuda;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Engine.Tests.Kernels;

/// <summary>The CUDA side without a GPU: NVRTC compiles every kernel (the build's compile check), and the driver binding.</summary>
public class CudaToolingTests
{
    readonly ITestOutputHelper _output;
    public CudaToolingTests(ITestOutputHelper output) => _output = output;

    /// <summary>
    /// Every kernel compiles with NVRTC to cubin for sm_80/86/89/90 and to PTX, without register spills.
    /// NVRTC is installed by ./build.sh; its absence fails this test (the compile check must not pass by skipping).
    /// </summary>
    [Fact]
    public void EveryKernelCompilesForEveryArchitectureWithoutSpills()
    {
        Assert.True(KernelCompiler.CompilerAvailable, KernelCompiler.CompilerUnavailableReason);
        var rows = KernelCompiler.CompileAll();
        _output.WriteLine(KernelCompiler.CompilerDescription);
        foreach (var r in rows) _output.WriteLine($"{r.Kernel,-28} {r.Arch,-10} {r.Format,-5} registers {r.Registers?.ToString() ?? "-",3} spill {r.SpillBytes?.ToString() ?? "-"}");
        int kernels = KernelSources.Kernels.Values.Sum(k => k.Length);
        Assert.Equal(kernels * (KernelCompiler.CubinArchitectures.Count + 1), rows.Count);
        foreach (var r in rows.Where(r => r.Format == "cubin"))
        {
            Assert.InRange(r.Registers!.Value, 1, 255);
            Assert.True(r.SpillBytes == 0, $"{r.Kernel} on {r.Arch} spills {r.SpillBytes} bytes");
        }
    }

    [Fact]
    public void CompileErrorsAreReportedWithTheLog()
    {
        Assert.True(KernelCompiler.CompilerAvailable, KernelCompiler.CompilerUnavailableReason);
        var e = Assert.Throws<EngineException>(() => Nvrtc.Compile("extern \"C\" __global__ void broken() { undeclared_name = 1; }", "broken.cu", "sm_89"));
        Assert.Contains("undeclared_name", e.Message);
    }

    [Fact]
    public void PtxasReportIsParsed()
    {
        const string log = """
            ptxas info    : Compiling entry function 'k_one' for 'sm_89'
            ptxas info    : Function properties for k_one
            ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
            ptxas info    : Used 40 registers, 96 bytes smem, 408 bytes cmem[0]
            ptxas info    : Compiling entry function 'k_two' for 'sm_89'
            ptxas info    : Function properties for k_two
            ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 22 registers, 408 bytes cmem[0]
            """;
        var rows = KernelCompiler.ParsePtxasReport(log, "x.cu", "sm_89", 100);
        Assert.Equal(2, rows.Count);
        Assert.Equal(new KernelResourceUsage("k_one", "x.cu", "sm_89", "cubin", 40, 12, 16, 96, 100), rows[0]);
        Assert.Equal(new KernelResourceUsage("k_two", "x.cu", "sm_89", "cubin", 22, 0, 0, 0, 100), rows[1]);
    }

    /// <summary>No GPU here: the driver binding must say so clearly. On a machine with one, the kernels run and match the CPU.</summary>
    [Fact]
    public void CudaPathRunsOrExplainsWhyNot()
    {
        if (!CudaDriver.IsAvailable || !cuda.is_available())
        {
            Assert.Contains("driver", CudaDriver.UnavailableReason ?? "cuda unavailable in TorchSharp: driver");
            if (!CudaDriver.IsAvailable)
            {
                var e = Assert.Throws<EngineException>(() => CudaDriver.PrimaryContext(0));
                Assert.Contains("libcuda.so.1", e.Message);
            }
            return;
        }
        using var scope = NewDisposeScope();
        var logits = randn(new long[] { 6, 3001 }) * 3;
        var labels = tensor(new long[] { 1, 2, -100, 3000, 0, 17 });
        var cpu = TokenLogProbs.FromLogits(logits, labels, LogProbMode.Fused);
        var gpu = TokenLogProbs.FromLogits(logits.cuda(), labels.cuda(), LogProbMode.Fused);
        TensorAssert.Close(gpu.LogProbs.cpu(), cpu.LogProbs, 1e-5, 1e-5, "CUDA log-probs");
        var kCpu = KlReduction.Compute(logits[.., ..10], logits[.., 10..20], ones(6, 10));
        var kGpu = KlReduction.Compute(logits[.., ..10].cuda(), logits[.., 10..20].cuda(), ones(6, 10).cuda());
        Assert.Equal(kCpu.MeanRaw, kGpu.MeanRaw); // same summation order: identical bits
    }
}
