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

/// <summary>NVRTC outputs are cached per process and on disk, keyed by everything that determines them.</summary>
public class NvrtcCacheTests
{
    [Fact]
    public void CompiledOutputsAreReusedInProcessAndFromDisk()
    {
        Assert.True(KernelCompiler.CompilerAvailable, KernelCompiler.CompilerUnavailableReason);
        string dir = Path.Combine(Path.GetTempPath(), "engine-nvrtc-test-" + Guid.NewGuid().ToString("N"));
        string? saved = Environment.GetEnvironmentVariable("ENGINE_NVRTC_CACHE");
        Environment.SetEnvironmentVariable("ENGINE_NVRTC_CACHE", dir);
        try
        {
            // A source no earlier test compiled (the comment makes its key new).
            string source = $"// {Guid.NewGuid()}\nextern \"C\" __global__ void twice(float* x) {{ x[threadIdx.x] *= 2.0f; }}\n";
            int before = KernelCompiler.Compilations;
            var first = Nvrtc.Compile(source, "twice.cu", "sm_89");
            Assert.Equal(before + 1, KernelCompiler.Compilations);
            Assert.Contains("twice", first.Log);
            var again = Nvrtc.Compile(source, "twice.cu", "sm_89");           // from memory
            Assert.Same(first, again);
            Assert.Equal(before + 1, KernelCompiler.Compilations);
            Nvrtc.Compile(source, "twice.cu", "compute_80");                   // other options: another entry
            Assert.Equal(before + 2, KernelCompiler.Compilations);
            string[] files = Directory.GetFiles(dir, "*.bin");
            Assert.Equal(2, files.Length);

            NvrtcCache.ClearMemory();
            var fromDisk = Nvrtc.Compile(source, "twice.cu", "sm_89");
            Assert.Equal(before + 2, KernelCompiler.Compilations);
            Assert.Equal(first.Image, fromDisk.Image);
            Assert.Equal(first.Log, fromDisk.Log);
            Assert.True(fromDisk.IsCubin);

            // A damaged entry is compiled again and rewritten, never trusted.
            foreach (string f in files) File.WriteAllBytes(f, File.ReadAllBytes(f)[..40]);
            NvrtcCache.ClearMemory();
            var recompiled = Nvrtc.Compile(source, "twice.cu", "sm_89");
            Assert.Equal(before + 3, KernelCompiler.Compilations);
            Assert.Equal(first.Image, recompiled.Image);

            // Failures are not cached.
            const string broken = "extern \"C\" __global__ void broken() { not_declared = 1; }";
            Assert.Throws<EngineException>(() => Nvrtc.Compile(broken, "broken.cu", "sm_89"));
            Assert.Throws<EngineException>(() => Nvrtc.Compile(broken, "broken.cu", "sm_89"));
            Assert.Equal(before + 5, KernelCompiler.Compilations);
            Assert.Equal(2, Directory.GetFiles(dir, "*.bin").Length);
            Assert.Empty(Directory.GetFiles(dir, "*.tmp"));
        }
        finally
        {
            Environment.SetEnvironmentVariable("ENGINE_NVRTC_CACHE", saved);
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void KeyCoversCompilerOptionsNameAndSource()
    {
        string k = NvrtcCache.Key("nvrtc 11.2", new[] { "--gpu-architecture=sm_89" }, "a.cu", "src");
        Assert.Equal(64, k.Length);
        Assert.Equal(k, NvrtcCache.Key("nvrtc 11.2", new[] { "--gpu-architecture=sm_89" }, "a.cu", "src"));
        Assert.NotEqual(k, NvrtcCache.Key("nvrtc 12.0", new[] { "--gpu-architecture=sm_89" }, "a.cu", "src"));
        Assert.NotEqual(k, NvrtcCache.Key("nvrtc 11.2", new[] { "--gpu-architecture=sm_90" }, "a.cu", "src"));
        Assert.NotEqual(k, NvrtcCache.Key("nvrtc 11.2", new[] { "--gpu-architecture=sm_89" }, "b.cu", "src"));
        Assert.NotEqual(k, NvrtcCache.Key("nvrtc 11.2", new[] { "--gpu-architecture=sm_89" }, "a.cu", "src "));
    }
}
