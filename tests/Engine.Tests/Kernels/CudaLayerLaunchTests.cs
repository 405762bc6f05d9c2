using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Engine.Kernels;
using Engine.Kernels.Cuda;
using Engine.Util;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Tests.Kernels;

/// <summary>
/// The CUDA launchers without a GPU (there is none here or in CI): the fused layer kernels and the multi-tensor AdamW
/// first, and the log-prob, KL and quantized matmul launchers likewise. A stand-in for libcuda (the function-pointer table the real driver fills, as in <see cref="CudaLaunchTests"/>)
/// sees every launch. Three things are checked: each launcher's argument list has the names, order and C types of
/// its kernel's extern "C" signature in the .cu source, and every kernel it launches is an entry of the NVRTC-compiled
/// module; the launches, forwarded with their own grid, block and kernelParams to the unchanged kernels under the CPU
/// emulation (native/tests/cuda_emulated_launch.cpp), write every output element and match float64 references on edge
/// shapes; and without a CUDA build and driver the path says so.
/// </summary>
public unsafe partial class CudaLayerLaunchTests
{
    static readonly Dictionary<IntPtr, string> FunctionNames = new();
    static readonly List<(string Kernel, uint GridX, uint GridY, uint Block)> Launches = new();
    static delegate* unmanaged<byte*, uint, uint, uint, uint, uint, uint, void**, int> emulated;

    [UnmanagedCallersOnly] static int Init(uint flags) => 0;
    [UnmanagedCallersOnly] static int DriverGetVersion(int* v) { *v = 12040; return 0; }
    [UnmanagedCallersOnly] static int DeviceGet(int* device, int ordinal) { *device = ordinal; return 0; }
    [UnmanagedCallersOnly] static int DeviceGetAttribute(int* value, int attribute, int device) { *value = attribute == 75 ? 8 : 9; return 0; }
    [UnmanagedCallersOnly] static int PrimaryCtxRetain(IntPtr* context, int device) { *context = 0x1000; return 0; }
    [UnmanagedCallersOnly] static int CtxPushCurrent(IntPtr context) => context == 0x1000 ? 0 : 201;
    [UnmanagedCallersOnly] static int CtxPopCurrent(IntPtr* context) { *context = 0x1000; return 0; }
    [UnmanagedCallersOnly] static int ModuleLoadData(IntPtr* module, void* image) { *module = 0x2000; return 0; }
    [UnmanagedCallersOnly]
    static int ModuleGetFunction(IntPtr* function, IntPtr module, byte* name)
    {
        *function = 0x3000 + FunctionNames.Count;
        FunctionNames[*function] = Marshal.PtrToStringAnsi((IntPtr)name)!;
        return 0;
    }
    [UnmanagedCallersOnly]
    static int LaunchKernel(IntPtr f, uint gx, uint gy, uint gz, uint bx, uint by, uint bz, uint shared, IntPtr stream, void** args, void** extra)
    {
        string name = FunctionNames[f];
        Launches.Add((name, gx, gy, bx));
        if (emulated == null) return 0;
        byte[] ascii = System.Text.Encoding.ASCII.GetBytes(name + "\0");
        fixed (byte* p = ascii) return emulated(p, gx, gy, gz, bx, by, bz, args);
    }
    [UnmanagedCallersOnly] static int MemGetInfo(nuint* free, nuint* total) { *free = 1; *total = 2; return 0; }
    [UnmanagedCallersOnly] static int GetErrorString(int status, byte** text) { *text = null; return 1; }

    static CudaDriver.Api Fake() => new()
    {
        Init = &Init, DriverGetVersion = &DriverGetVersion, DeviceGet = &DeviceGet, DeviceGetAttribute = &DeviceGetAttribute,
        PrimaryCtxRetain = &PrimaryCtxRetain, CtxPushCurrent = &CtxPushCurrent, CtxPopCurrent = &CtxPopCurrent,
        ModuleLoadData = &ModuleLoadData, ModuleGetFunction = &ModuleGetFunction, LaunchKernel = &LaunchKernel,
        MemGetInfo = &MemGetInfo, GetErrorString = &GetErrorString,
    };

    // ---- the .cu signatures ----

    [GeneratedRegex(@"extern\s+""C""\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(?<name>\w+)\s*\((?<params>[^)]*)\)")]
    private static partial Regex KernelSignature();

    [GeneratedRegex(@"^#define\s+(?<macro>\w+)\((?<formals>[^)]*)\)(?<body>(?:[^\n]*\\\n)*[^\n]*)", RegexOptions.Multiline)]
    private static partial Regex MacroDefinition();

    /// <summary>
    /// The source with each function-like macro whose body defines a kernel expanded where it is invoked at the start
    /// of a line (qmatmul.cu declares its four kernels so); the definitions themselves are dropped.
    /// </summary>
    static string ExpandKernelMacros(string source)
    {
        foreach (Match d in MacroDefinition().Matches(source))
        {
            string body = d.Groups["body"].Value.Replace("\\\n", "\n");
            if (!body.Contains("__global__")) continue;
            string[] formals = d.Groups["formals"].Value.Split(',').Select(f => f.Trim()).ToArray();
            source = source.Replace(d.Value, "");
            source = Regex.Replace(source, $@"^{d.Groups["macro"].Value}\((?<actuals>[^)]*)\)", call =>
            {
                string[] actuals = call.Groups["actuals"].Value.Split(',').Select(a => a.Trim()).ToArray();
                string expanded = body;
                for (int i = 0; i < formals.Length; i++) expanded = Regex.Replace(expanded, $@"\b{formals[i]}\b", actuals[i]);
                return expanded;
            }, RegexOptions.Multiline);
        }
        return source;
    }

    /// <summary>name → [(parameter name, C type without const/__restrict__)] of every extern "C" kernel in <paramref name="file"/>.</summary>
    static Dictionary<string, List<(string Name, string Type)>> Signatures(string file)
    {
        var result = new Dictionary<string, List<(string, string)>>();
        foreach (Match m in KernelSignature().Matches(ExpandKernelMacros(KernelSources.Read(file))))
        {
            var parameters = new List<(string, string)>();
            foreach (string raw in m.Groups["params"].Value.Split(','))
            {
                var tokens = Regex.Replace(raw, @"\*", " * ").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
                    .Where(t => t is not ("const" or "__restrict__")).ToList();
                string name = tokens[^1];
                string type = string.Join(" ", tokens.Take(tokens.Count - 1)).Replace(" *", "*");
                parameters.Add((name, type));
            }
            result[m.Groups["name"].Value] = parameters;
        }
        return result;
    }

    [Fact]
    public void SignatureParserReadsTheKernelsOfTheSource()
    {
        var fused = Signatures(KernelSources.FusedLayers);
        Assert.Equal(KernelSources.Kernels[KernelSources.FusedLayers].Order(), fused.Keys.Order());
        // Hand-read from fused_layers.cu and adamw.cu.
        Assert.Equal(new[] { ("act", "int"), ("gate", "unsigned short*"), ("up", "unsigned short*"), ("count", "long long"), ("h", "unsigned short*") },
            fused["glu_forward_bf16"]);
        Assert.Equal(new[] { ("a", "float*"), ("m", "int"), ("format", "int"), ("rows", "int"), ("cols", "int"), ("data", "unsigned char*"),
            ("absmax", "float*"), ("qabsmax", "unsigned char*"), ("absmax2", "float*"), ("code2", "float*"), ("offset", "float"),
            ("nf4_code", "float*"), ("c", "float*") }, Signatures(KernelSources.QuantizedMatmul)["qmatmul_backward_f32"]);
        var adamw = Signatures(KernelSources.AdamW);
        Assert.Equal(new[] { ("tensors", "AdamWTensorDesc*"), ("first_chunk", "long long*"), ("count", "int"), ("h", "AdamWHyperParams"), ("grad_scale", "float*") },
            adamw["adamw_step"]);
    }

    /// <summary>Runs every launcher once per dtype (under a record-only driver) and returns (kernel, parameters) of each launch.</summary>
    static List<(string Kernel, List<(string Name, string Type)> Parameters)> RecordEveryLauncher()
    {
        var seen = new List<(string, List<(string, string)>)>();
        KernelArguments.Observer = (kernel, grid, block, args) => seen.Add((kernel, args.Parameters.ToList()));
        try
        {
            using var scope = NewDisposeScope();
            foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            {
                var x = zeros(new long[] { 2, 3, 4, 8 }, dtype);
                var w = zeros(new long[] { 8 }, dtype);
                var inv = zeros(new long[] { 24 }, ScalarType.Float32);
                var dw = zeros(new long[] { 8 }, ScalarType.Float32);
                LayerCudaKernels.RmsNormForward(x, w, 1e-6f, 1, x.clone(), inv);
                LayerCudaKernels.RmsNormBackward(x, w, inv, x.clone(), 1, x.clone(), dw);
                var table = zeros(new long[] { 6, 4 }, ScalarType.Float32);
                LayerCudaKernels.Rope(x, table, table, inverse: true);
                LayerCudaKernels.RopeStrided(x.transpose(1, 2).contiguous().transpose(1, 2), x.clone(), table, table, inverse: true);
                LayerCudaKernels.GluForward(1, x, x.clone(), x.clone());
                LayerCudaKernels.GluBackward(0, x, x.clone(), x.clone(), x.clone(), x.clone());
            }
            var p = zeros(10);
            var tensors = new[] { Descriptor(p, p, p, p, null, decay: true) };
            AdamWCudaKernels.GradSumSquares(tensors, CPU);
            AdamWCudaKernels.Step(tensors, new NativeKernels.AdamWHyper { GradScale = 1 }, CPU);
            // The log-prob and KL launchers (pointers never dereferenced: the driver only records).
            foreach (bool bf16 in new[] { false, true })
            {
                CudaKernels.LaunchForward(0, bf16, 2, 10, 0x10, 0x20, 0x30, 0x40, 0x50, 0);
                CudaKernels.LaunchBackward(0, bf16, 2, 10, 0x10, 0x20, 0x30, 0x40, 0x50, 0);
            }
            CudaKernels.LaunchKlZ0(0, 2, 3, 0x10, 0x20, 0, 0x30, 0x40, 0x50, 0x60, 0x70, 0);
            // The quantized matmul, both directions, both dtypes.
            using var weight = Engine.Kernels.Quantized.QuantizedWeight.Quantize(Randn(1, 64, 128), Engine.Kernels.Quantized.QuantFormat.Nf4DoubleQuant);
            foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            {
                Engine.Kernels.Quantized.QuantizedCudaKernels.Launch(false, zeros(new long[] { 3, 128 }, dtype), 3, weight, zeros(new long[] { 3, 64 }, dtype));
                Engine.Kernels.Quantized.QuantizedCudaKernels.Launch(true, zeros(new long[] { 3, 64 }, dtype), 3, weight, zeros(new long[] { 3, 128 }, dtype));
            }
        }
        finally
        {
            KernelArguments.Observer = null;
        }
        return seen;
    }

    [Fact]
    public void EveryLauncherPassesItsKernelsParametersInOrderWithTheirTypes()
    {
        Assert.True(KernelCompiler.CompilerAvailable, KernelCompiler.CompilerUnavailableReason); // the modules are compiled for real
        string[] files = KernelSources.Files.ToArray();
        var signatures = files.SelectMany(Signatures).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(files.SelectMany(f => KernelSources.Kernels[f]).Order(), signatures.Keys.Order());
        emulated = null;
        FunctionNames.Clear(); Launches.Clear();
        List<(string Kernel, List<(string Name, string Type)> Parameters)> seen;
        using (CudaDriver.Substitute(Fake())) seen = RecordEveryLauncher();

        foreach (var (kernel, parameters) in seen)
        {
            Assert.True(signatures.TryGetValue(kernel, out var expected), $"{kernel} is not an extern \"C\" kernel of the .cu sources");
            Assert.Equal(expected, parameters);
        }
        // Every kernel of these sources has a launcher, and the driver was asked for exactly the function launched.
        Assert.Equal(signatures.Keys.Order(), seen.Select(s => s.Kernel).Distinct().Order());
        Assert.Equal(seen.Select(s => s.Kernel), Launches.Select(l => l.Kernel));

        // Each launched name is an entry of the module NVRTC builds from the embedded source.
        foreach (string file in files)
        {
            string ptx = System.Text.Encoding.ASCII.GetString(Nvrtc.Compile(KernelSources.Read(file), file, KernelCompiler.PtxArchitecture).Image);
            foreach (string kernel in seen.Select(s => s.Kernel).Distinct().Where(k => KernelSources.Kernels[file].Contains(k)))
                Assert.Contains($".entry {kernel}(", ptx);
        }
    }

    [Fact]
    public void LaunchShapesFollowTheKernelsContract()
    {
        Assert.Equal((1, 1), LayerCudaKernels.BackwardChunks(1));
        Assert.Equal((1, 512), LayerCudaKernels.BackwardChunks(512));
        Assert.Equal((2, 257), LayerCudaKernels.BackwardChunks(513));   // 256 chunks of 2 rows and one of 1
        Assert.Equal((8, 512), LayerCudaKernels.BackwardChunks(4096));
        foreach (long rows in new long[] { 1, 2, 511, 512, 513, 1000, 4097, 1_000_003 })
        {
            var (perBlock, chunks) = LayerCudaKernels.BackwardChunks(rows);
            Assert.True((long)perBlock * chunks >= rows && (long)perBlock * (chunks - 1) < rows, $"rows {rows}: {chunks} chunks of {perBlock}");
        }
        Assert.Equal(1u, LayerCudaKernels.ElementwiseBlocks(1));
        Assert.Equal(2u, LayerCudaKernels.ElementwiseBlocks(257));
        Assert.Equal((uint)LayerCudaKernels.MaxElementwiseBlocks, LayerCudaKernels.ElementwiseBlocks(long.MaxValue / 2));
        Assert.Equal(2u, LayerCudaKernels.ColumnBlocks(300));
        var descriptors = new[] { new NativeKernels.AdamWTensor { Numel = 8192 }, new NativeKernels.AdamWTensor { Numel = 0 }, new NativeKernels.AdamWTensor { Numel = 8193 } };
        Assert.Equal(new long[] { 0, 1, 1, 3 }, AdamWCudaKernels.FirstChunks(descriptors));
        // The host mirror of AdamWTensorDesc / AdamWHyperParams that the kernels read.
        Assert.Equal(64, sizeof(NativeKernels.AdamWTensor));
        Assert.Equal(36, sizeof(NativeKernels.AdamWHyper));
    }

    [Fact]
    public void WithoutACudaBuildAndDriverTheCudaPathSaysSo()
    {
        if (CudaDriver.IsAvailable) return; // a machine with a GPU: the launches run for real
        using var scope = NewDisposeScope();
        var x = zeros(2, 1, 1, 4);
        var e = Assert.Throws<EngineException>(() => LayerCudaKernels.Rope(x, zeros(2, 2), zeros(2, 2), inverse: false));
        if (!cuda.is_available())
        {
            Assert.Contains("CUDA build needed", e.Message);
            Assert.Contains("EngineBackend=cuda", e.Message);
        }
        Assert.Contains("libcuda.so.1", e.Message);
        var p = zeros(4);
        var a = Assert.Throws<EngineException>(() => AdamWCudaKernels.Step(new[] { Descriptor(p, p, p, p, null, false) }, default, CPU));
        Assert.Equal(e.Message, a.Message);
    }

    // ---- the launches under the CPU emulation ----

    static string? EmulationLibrary()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "native", "build", "libengine_cuda_emulated.so");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    /// <summary>Runs <paramref name="body"/> with every launch executed by the emulated kernels.</summary>
    static void Emulated(Action body)
    {
        string? library = EmulationLibrary();
        Skip.If(library is null, "native/build/libengine_cuda_emulated.so not built (./build.sh)");
        IntPtr handle = NativeLibrary.Load(library!);
        emulated = (delegate* unmanaged<byte*, uint, uint, uint, uint, uint, uint, void**, int>)NativeLibrary.GetExport(handle, "engine_emulated_launch");
        FunctionNames.Clear(); Launches.Clear();
        try
        {
            using (CudaDriver.Substitute(Fake())) body();
        }
        finally
        {
            emulated = null;
        }
    }

    static Tensor Randn(int seed, params long[] shape) => randn(shape, generator: new Generator((ulong)seed));
    static Tensor Sentinel(long[] shape, ScalarType dtype) => full(shape, double.NaN, dtype);

    /// <summary>f(leaves) in float64 and the gradients of Σ f · upstream.</summary>
    static (Tensor Out, Tensor[] Grads) Reference(Func<Tensor[], Tensor> f, Tensor upstream, params Tensor[] inputs)
    {
        var leaves = inputs.Select(t => t.detach().to(ScalarType.Float64).requires_grad_(true)).ToArray();
        var output = f(leaves);
        output.backward(new[] { upstream.to(ScalarType.Float64) });
        return (output.detach(), leaves.Select(l => l.grad!.detach()).ToArray());
    }

    static void Close(Tensor actual, Tensor expected, bool bf16, double scale, string what)
    {
        Assert.False(actual.isnan().any().item<bool>(), $"{what}: an element the launch never wrote (NaN sentinel left)");
        double tol = (bf16 ? 2e-2 : 1e-5) * Math.Max(1, scale);
        TensorAssert.Close(actual.to(ScalarType.Float64), expected, tol, bf16 ? 1e-2 : 1e-5, what);
    }

    [SkippableTheory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void RmsNormLaunchesCoverEveryRowAndMatchTheFormula(ScalarType dtype)
    {
        bool bf16 = dtype == ScalarType.BFloat16;
        int savedChunks = LayerCudaKernels.TargetBackwardChunks;
        Emulated(() =>
        {
            // (1, 1): one row of one; (7, 300): 3 chunks of 3, 3 and 1 rows, 300 > 256 columns per thread loop, 2 column blocks.
            foreach (var (rows, n, chunks) in new[] { (1, 1, 512), (7, 300, 3), (5, 64, 512) })
                foreach (bool unitOffset in new[] { false, true })
                {
                    using var scope = NewDisposeScope();
                    LayerCudaKernels.TargetBackwardChunks = chunks;
                    string what = $"{dtype} {rows}x{n} {(unitOffset ? "(1+w)" : "w")}";
                    var x = (Randn(1, rows, n) * 2).to(dtype);
                    var w = (Randn(2, n) * 0.3 + (unitOffset ? 0 : 1)).to(dtype);
                    var dy = Randn(3, rows, n).to(dtype);
                    var y = Sentinel(new long[] { rows, n }, dtype);
                    var inv = Sentinel(new long[] { rows }, ScalarType.Float32);
                    LayerCudaKernels.RmsNormForward(x, w, 1e-6f, unitOffset ? 1 : 0, y, inv);
                    var dx = Sentinel(new long[] { rows, n }, dtype);
                    var dw = Sentinel(new long[] { n }, ScalarType.Float32);
                    LayerCudaKernels.RmsNormBackward(x, w, inv, dy, unitOffset ? 1 : 0, dx, dw);

                    var (ry, rg) = Reference(t => t[0] * rsqrt(t[0].pow(2).mean(new long[] { -1 }, keepdim: true) + 1e-6) * (unitOffset ? t[1] + 1 : t[1]), dy, x, w);
                    var rinv = rsqrt(x.to(ScalarType.Float64).pow(2).mean(new long[] { -1 }) + 1e-6);
                    Close(inv, rinv, false, 1, what + " inv_rms");
                    Close(y, ry, bf16, 1, what + " y");
                    Close(dx, rg[0], bf16, rg[0].abs().max().item<double>(), what + " dx");
                    Close(dw, rg[1], bf16, rg[1].abs().max().item<double>(), what + " dw");
                    var (perBlock, expectChunks) = LayerCudaKernels.BackwardChunks(rows);
                    Assert.Contains(Launches, l => l.Kernel.StartsWith("rmsnorm_backward") && l.GridX == expectChunks && l.Block == 256);
                }
        });
        LayerCudaKernels.TargetBackwardChunks = savedChunks;
    }

    [SkippableTheory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void RopeLaunchesRotateEveryPairBothWays(ScalarType dtype)
    {
        bool bf16 = dtype == ScalarType.BFloat16;
        Emulated(() =>
        {
            // heads · headDim/2 below, equal to and above the block's 256 threads.
            foreach (var shape in new[] { new long[] { 2, 3, 3, 10 }, new long[] { 1, 2, 4, 128 }, new long[] { 1, 1, 5, 128 } })
                foreach (bool inverse in new[] { false, true })
                {
                    using var scope = NewDisposeScope();
                    long tokens = shape[0] * shape[1], half = shape[3] / 2;
                    // Arbitrary angles (no position 0 whose rotation is the identity): an unvisited pair would show.
                    var angle = Randn(4, tokens, half) * 3 + 0.5;
                    var cos = angle.cos().contiguous();
                    var sin = angle.sin().contiguous();
                    var x = Randn(5, shape).to(dtype);
                    var rotated = x.clone();
                    LayerCudaKernels.Rope(rotated, cos, sin, inverse);

                    var xd = x.to(ScalarType.Float64).reshape(tokens, shape[2], shape[3]);
                    var c = cos.to(ScalarType.Float64).unsqueeze(1);
                    var s = sin.to(ScalarType.Float64).unsqueeze(1) * (inverse ? -1 : 1);
                    var a = xd[.., .., ..(int)half];
                    var b = xd[.., .., (int)half..];
                    var expected = cat(new[] { a * c - b * s, b * c + a * s }, -1).reshape(shape);
                    Close(rotated, expected, bf16, 1, $"{dtype} rope {string.Join("x", shape)} inverse {inverse}");
                    Assert.Equal(((uint)tokens, 256u), (Launches[^1].GridX, Launches[^1].Block));

                    // The backward's one pass: the same values read through [B, heads, T, d] memory (attention's
                    // transposed gradient) into a fresh contiguous tensor.
                    var transposed = x.transpose(1, 2).contiguous().transpose(1, 2);
                    var into = zeros(shape, dtype);
                    LayerCudaKernels.RopeStrided(transposed, into, cos, sin, inverse);
                    Close(into, expected, bf16, 1, $"{dtype} rope strided {string.Join("x", shape)} inverse {inverse}");
                    Assert.Equal(((uint)tokens, 256u), (Launches[^1].GridX, Launches[^1].Block));
                }
        });
    }

    [SkippableTheory]
    [InlineData(ScalarType.Float32, 0)]
    [InlineData(ScalarType.Float32, 1)]
    [InlineData(ScalarType.BFloat16, 0)]
    [InlineData(ScalarType.BFloat16, 1)]
    public void GatedActivationLaunchesCoverEveryElement(ScalarType dtype, int activation)
    {
        bool bf16 = dtype == ScalarType.BFloat16;
        long savedBlocks = LayerCudaKernels.MaxElementwiseBlocks;
        Emulated(() =>
        {
            // 1 element; 257 (a second, nearly empty block); 1000 on a grid capped at 2 blocks (the grid-stride loop).
            foreach (var (count, cap) in new[] { (1L, savedBlocks), (257L, savedBlocks), (1000L, 2L) })
            {
                using var scope = NewDisposeScope();
                LayerCudaKernels.MaxElementwiseBlocks = cap;
                string what = $"{dtype} act {activation} n {count}";
                var gate = (Randn(6, count) * 3).to(dtype);
                var up = Randn(7, count).to(dtype);
                var dh = Randn(8, count).to(dtype);
                var h = Sentinel(new[] { count }, dtype);
                LayerCudaKernels.GluForward(activation, gate, up, h);
                Assert.Equal(LayerCudaKernels.ElementwiseBlocks(count), Launches[^1].GridX);
                var dGate = Sentinel(new[] { count }, dtype);
                var dUp = Sentinel(new[] { count }, dtype);
                LayerCudaKernels.GluBackward(activation, gate, up, dh, dGate, dUp);

                var (rh, rg) = Reference(t => (activation == 0 ? F.silu(t[0]) : 0.5 * t[0] * (1 + tanh(Math.Sqrt(2 / Math.PI) * (t[0] + 0.044715 * t[0].pow(3))))) * t[1], dh, gate, up);
                Close(h, rh, bf16, 1, what + " h");
                Close(dGate, rg[0], bf16, 1, what + " d_gate");
                Close(dUp, rg[1], bf16, 1, what + " d_up");
            }
        });
        LayerCudaKernels.MaxElementwiseBlocks = savedBlocks;
    }

    [SkippableTheory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void LogProbLaunchesMatchLogSoftmax(ScalarType dtype)
    {
        bool bf16 = dtype == ScalarType.BFloat16;
        Emulated(() =>
        {
            using var scope = NewDisposeScope();
            // vocab 3001: two backward tiles of 2048, the second partial; one ignored row.
            const int rows = 3, vocab = 3001;
            var logits = (Randn(50, rows, vocab) * 3).to(dtype);
            var labels = tensor(new long[] { 7, TokenLogProbs.IgnoreIndex, 3000 });
            var logp = Sentinel(new long[] { rows }, ScalarType.Float32);
            var stats = Sentinel(new long[] { rows, 2 }, ScalarType.Float32);
            var means = Sentinel(new long[] { rows }, ScalarType.Float32);
            CudaKernels.Forward(logits, labels, logp, stats, means);
            var gradOut = tensor(new float[] { 0.5f, 2f, -1.5f });
            var grad = Sentinel(new long[] { rows, vocab }, dtype);
            CudaKernels.Backward(logits, labels, stats, gradOut, grad);

            var x = logits.to(ScalarType.Float64);
            var logSoftmax = x.log_softmax(-1);
            var valid = labels.ne(TokenLogProbs.IgnoreIndex);
            var safe = labels.where(valid, 0);
            var expected = logSoftmax.gather(1, safe.unsqueeze(1)).squeeze(1) * valid;
            Close(logp, expected, false, 1, $"{dtype} log p");
            Close(means, x.mean(new long[] { -1 }), false, 1, $"{dtype} mean logit");
            var onehot = F.one_hot(safe, vocab).to(ScalarType.Float64);
            var expectedGrad = (onehot - logSoftmax.exp()) * (gradOut.to(ScalarType.Float64) * valid).unsqueeze(1);
            Close(grad, expectedGrad, bf16, 1, $"{dtype} gradient");
        });
    }

    [SkippableTheory]
    [InlineData(ScalarType.Float32, Engine.Kernels.Quantized.QuantFormat.Nf4DoubleQuant)]
    [InlineData(ScalarType.BFloat16, Engine.Kernels.Quantized.QuantFormat.Int8)]
    public void QuantizedMatmulLaunchesCoverEveryTile(ScalarType dtype, Engine.Kernels.Quantized.QuantFormat format)
    {
        bool bf16 = dtype == ScalarType.BFloat16;
        Emulated(() =>
        {
            using var scope = NewDisposeScope();
            // m = 70 and 100 output rows: two 64-wide tiles each way, the second partial.
            using var weight = Engine.Kernels.Quantized.QuantizedWeight.Quantize(Randn(55, 100, 128), format);
            var dequantized = weight.Dequantize(ScalarType.Float32).to(ScalarType.Float64);
            var a = Randn(56, 70, 128).to(dtype);
            var c = Sentinel(new long[] { 70, 100 }, dtype);
            Engine.Kernels.Quantized.QuantizedCudaKernels.Launch(false, a, 70, weight, c);
            Assert.Equal((2u, 2u, 256u), (Launches[^1].GridX, Launches[^1].GridY, Launches[^1].Block));
            var expected = a.to(ScalarType.Float64).matmul(dequantized.t());
            Close(c, expected, bf16, expected.abs().max().item<double>() * 1e-1, $"{dtype} {format} forward");
            var dy = Randn(57, 70, 100).to(dtype);
            var dx = Sentinel(new long[] { 70, 128 }, dtype);
            Engine.Kernels.Quantized.QuantizedCudaKernels.Launch(true, dy, 70, weight, dx);
            Assert.Equal((2u, 2u, 256u), (Launches[^1].GridX, Launches[^1].GridY, Launches[^1].Block));
            var expectedDx = dy.to(ScalarType.Float64).matmul(dequantized);
            Close(dx, expectedDx, bf16, expectedDx.abs().max().item<double>() * 1e-1, $"{dtype} {format} input gradient");
        });
    }

    [SkippableFact]
    public void KlLaunchMatchesTheCpuKernelBitForBit()
    {
        Emulated(() =>
        {
            using var scope = NewDisposeScope();
            var policy = Randn(60, 4, 37) * 0.5 - 2;
            var reference = Randn(61, 4, 37) * 0.5 - 2;
            var mask = Randn(62, 4, 37).gt(-0.5);
            var policySums = Sentinel(new long[] { 4 }, ScalarType.Float32);
            var referenceSums = Sentinel(new long[] { 4 }, ScalarType.Float32);
            var (meanRaw, z0) = CudaKernels.KlZ0(policy, reference, null, mask, policySums, referenceSums);
            var m = mask.to(ScalarType.Float64);
            Close(policySums, (policy.to(ScalarType.Float64) * m).sum(1), false, 1, "policy sums");
            Close(referenceSums, (reference.to(ScalarType.Float64) * m).sum(1), false, 1, "reference sums");
            using var cpu = KlReduction.Compute(policy, reference, mask);
            Assert.Equal(cpu.MeanRaw, meanRaw); // the same summation order as the CPU kernel: identical bits
            Assert.Equal(cpu.Z0, z0);
            Assert.Equal((1u, 1u, 256u), (Launches[^1].GridX, Launches[^1].GridY, Launches[^1].Block));
        });
    }

    // ---- on a GPU (none here or in CI: skipped with the reason) ----

    /// <summary>f(leaves on device) with the fused kernels chosen; output and the gradients of Σ f · upstream, on the CPU.</summary>
    static (Tensor Out, Tensor[] Grads) RunFusedOn(Device device, Func<Tensor[], Tensor?> f, Tensor upstream, params Tensor[] inputs)
    {
        using var fused = FusedKernels.Use(KernelChoice.Fused);
        var leaves = inputs.Select(t => t.detach().to(device).requires_grad_(true)).ToArray();
        var output = f(leaves);
        Assert.NotNull(output); // the fused kernel took the tensors
        output!.backward(new[] { upstream.to(output.dtype).to(device) });
        return (output.detach().cpu(), leaves.Select(l => l.grad!.detach().cpu()).ToArray());
    }

    [SkippableTheory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void OnAGpuTheLayerKernelsAndAdamWMatchTheCpuKernels(ScalarType dtype)
    {
        Skip.IfNot(CudaDriver.IsAvailable && cuda.is_available(), "no GPU with TorchSharp's CUDA build on this machine");
        Skip.IfNot(NativeKernels.IsAvailable, "native kernels not built");
        bool bf16 = dtype == ScalarType.BFloat16;
        double atol = bf16 ? 3e-2 : 1e-5, rtol = bf16 ? 1e-2 : 1e-5;
        using var scope = NewDisposeScope();
        var gpu = new Device(DeviceType.CUDA, 0);
        void Same((Tensor Out, Tensor[] Grads) onGpu, (Tensor Out, Tensor[] Grads) onCpu, string what)
        {
            TensorAssert.Close(onGpu.Out, onCpu.Out, atol, rtol, what);
            for (int i = 0; i < onCpu.Grads.Length; i++) TensorAssert.Close(onGpu.Grads[i], onCpu.Grads[i], atol * 10, rtol, $"{what} grad {i}");
        }

        var x = (Randn(70, 3, 700, 96) * 2).to(dtype);
        var dy = Randn(71, 3, 700, 96).to(dtype);
        foreach (bool unitOffset in new[] { false, true })
        {
            var w = (Randn(72, 96) * 0.3 + (unitOffset ? 0 : 1)).to(dtype);
            Tensor? Norm(Tensor[] t) => LayerKernels.RmsNorm(t[0], t[1], 1e-6, unitOffset);
            Same(RunFusedOn(gpu, Norm, dy, x, w), RunFusedOn(CPU, Norm, dy, x, w), $"rmsnorm unitOffset {unitOffset}");
        }
        var angle = Randn(73, 2 * 9, 32) * 3;
        Tensor cos = angle.cos().contiguous(), sin = angle.sin().contiguous();
        var q = Randn(74, 2, 9, 5, 64).to(dtype);
        var dq = Randn(75, 2, 9, 5, 64).to(dtype);
        Tensor? Rope(Tensor[] t) => LayerKernels.Rope(t[0] * 1, cos.to(t[0].device), sin.to(t[0].device));
        Same(RunFusedOn(gpu, Rope, dq, q), RunFusedOn(CPU, Rope, dq, q), "rope");
        var gate = (Randn(76, 4, 300_001) * 3).to(dtype);
        var up = Randn(77, 4, 300_001).to(dtype);
        var dh = Randn(78, 4, 300_001).to(dtype);
        foreach (var act in new[] { GatedActivation.SwiGlu, GatedActivation.GeGlu })
        {
            Tensor? Glu(Tensor[] t) => LayerKernels.Gated(t[0], t[1], act);
            Same(RunFusedOn(gpu, Glu, dh, gate, up), RunFusedOn(CPU, Glu, dh, gate, up), act.ToString());
        }

        // Two fused AdamW steps (the second clipped) on the same parameters and gradients, CPU and GPU.
        long[][] shapes = { new long[] { 300, 257 }, new long[] { 257 }, new long[] { 1 } };
        var onCpu = shapes.Select((s, i) => ($"p{i}", new TorchSharp.Modules.Parameter(Randn(80 + i, s).to(dtype)))).ToList();
        var onGpu = onCpu.Select(p => (p.Item1, new TorchSharp.Modules.Parameter(p.Item2.detach().to(gpu)))).ToList();
        using var cpuOpt = new Engine.Training.AdamW(onCpu, weightDecay: 0.1, kernel: Engine.Training.OptimizerKernel.Fused);
        using var gpuOpt = new Engine.Training.AdamW(onGpu, weightDecay: 0.1, kernel: Engine.Training.OptimizerKernel.Fused);
        foreach (double maxNorm in new[] { 0.0, 1.0 })
        {
            for (int i = 0; i < shapes.Length; i++)
            {
                var g = Randn(90 + i, shapes[i]).to(dtype);
                onCpu[i].Item2.grad = g.clone();
                onGpu[i].Item2.grad = g.to(gpu);
            }
            double normCpu = cpuOpt.ClipGradients(maxNorm), normGpu = gpuOpt.ClipGradients(maxNorm);
            Assert.Equal(normCpu, normGpu, normCpu * 1e-6);
            cpuOpt.Step(1e-2);
            gpuOpt.Step(1e-2);
            for (int i = 0; i < shapes.Length; i++)
            {
                var c = cpuOpt.Slots[i];
                var d = gpuOpt.Slots[i];
                TensorAssert.Close((d.Master ?? d.Parameter).cpu(), c.Master ?? c.Parameter, 1e-6, 1e-5, $"adamw weights {i}");
                TensorAssert.Close(d.ExpAvg.cpu(), c.ExpAvg, 1e-7, 1e-5, $"adamw exp_avg {i}");
            }
        }
    }

    static NativeKernels.AdamWTensor Descriptor(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor? master, bool decay) => new()
    {
        Param = TensorMemory.DataPointer(param),
        Master = master is null ? IntPtr.Zero : TensorMemory.DataPointer(master),
        Grad = TensorMemory.DataPointer(grad),
        ExpAvg = TensorMemory.DataPointer(m),
        ExpAvgSq = TensorMemory.DataPointer(v),
        Numel = param.numel(),
        ParamDtype = param.dtype == ScalarType.BFloat16 ? NativeKernels.DtypeBf16 : NativeKernels.DtypeF32,
        StateDtype = m.dtype == ScalarType.BFloat16 ? NativeKernels.DtypeBf16 : NativeKernels.DtypeF32,
        Decay = decay ? 1 : 0,
    };

    [SkippableFact]
    public void AdamWLaunchesUpdateEveryTensorOfAnySize()
    {
        Emulated(() =>
        {
            using var scope = NewDisposeScope();
            // f32 [3]; f32 [8193] (a full chunk and a chunk of one); an empty tensor (owns no chunk); bf16 [300] with an
            // fp32 master. A gradient scale of 0.5 stands for clipping.
            var sizes = new long[] { 3, 8193, 0, 300 };
            var tensors = new List<(Tensor P, Tensor G, Tensor M, Tensor V, Tensor? Master, bool Decay)>();
            for (int i = 0; i < sizes.Length; i++)
            {
                bool bf16 = i == 3;
                var master = Randn(10 + i, sizes[i]);
                var p = master.to(bf16 ? ScalarType.BFloat16 : ScalarType.Float32);
                var g = (Randn(20 + i, sizes[i]) * 0.1).to(p.dtype);
                tensors.Add((p, g, Randn(30 + i, sizes[i]) * 0.01, Randn(40 + i, sizes[i]).abs() * 1e-3, bf16 ? master.clone() : null, i != 1));
            }
            var before = tensors.Select(t => (W: (t.Master ?? t.P).to(ScalarType.Float64), M: t.M.to(ScalarType.Float64), V: t.V.to(ScalarType.Float64))).ToList();
            var descriptors = tensors.Select(t => Descriptor(t.P, t.G, t.M, t.V, t.Master, t.Decay)).ToArray();

            double expectedSum = tensors.Sum(t => t.G.to(ScalarType.Float64).pow(2).sum().item<double>());
            int uploads = AdamWCudaKernels.TableUploads;
            double sum = AdamWCudaKernels.GradSumSquares(descriptors, CPU);
            Assert.Equal(expectedSum, sum, expectedSum * 1e-12);
            Assert.Equal((4u, 256u), (Launches[0].GridX, Launches[0].Block)); // 1 + 2 + 0 + 1 chunks
            Assert.Equal((1u, 256u), (Launches[1].GridX, Launches[1].Block));

            const double lr = 1e-2, wd = 0.1, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, scale = 0.5;
            const int step = 3;
            double bc1 = 1 - Math.Pow(beta1, step), bc2 = 1 - Math.Pow(beta2, step);
            var hyper = new NativeKernels.AdamWHyper
            {
                Beta1 = (float)beta1, OneMinusBeta1 = (float)(1 - beta1), Beta2 = (float)beta2, OneMinusBeta2 = (float)(1 - beta2),
                Eps = (float)eps, BiasCorrection2 = (float)bc2, StepSize = (float)(-lr / bc1), DecayFactor = (float)(1 - lr * wd), GradScale = (float)scale,
            };
            AdamWCudaKernels.Step(descriptors, hyper, CPU);
            Assert.Equal(uploads + 1, AdamWCudaKernels.TableUploads); // the norm and the step share one upload of the list

            for (int i = 0; i < tensors.Count; i++)
            {
                var t = tensors[i];
                var g = t.G.to(ScalarType.Float64) * scale;
                var w = before[i].W * (t.Decay ? 1 - lr * wd : 1);
                var m = before[i].M * beta1 + (1 - beta1) * g;
                var v = before[i].V * beta2 + (1 - beta2) * g * g;
                w = w - lr / bc1 * m / ((v / bc2).sqrt() + eps);
                string what = $"tensor {i} [{sizes[i]}]";
                TensorAssert.Close(t.M.to(ScalarType.Float64), m, 1e-7, 1e-5, what + " exp_avg");
                TensorAssert.Close(t.V.to(ScalarType.Float64), v, 1e-9, 1e-5, what + " exp_avg_sq");
                TensorAssert.Close((t.Master ?? t.P).to(ScalarType.Float64), w, 1e-6, 1e-5, what + " weights");
                if (t.Master is not null) TensorAssert.Close(t.P.to(ScalarType.Float64), t.Master.to(ScalarType.BFloat16).to(ScalarType.Float64), 0, 0, what + " bf16 copy of the master");
            }
            Assert.Equal((4u, 256u), (Launches[2].GridX, Launches[2].Block));

            // Another list (the first tensor alone) is uploaded anew, and its step touches that tensor only.
            var onlyFirst = tensors[0].P.clone();
            var otherBefore = tensors[1].P.clone();
            AdamWCudaKernels.Step(descriptors[..1], hyper, CPU);
            Assert.Equal(uploads + 2, AdamWCudaKernels.TableUploads);
            Assert.Equal((1u, 256u), (Launches[3].GridX, Launches[3].Block));
            Assert.True(tensors[0].P.ne(onlyFirst).any().item<bool>());
            TensorAssert.BitEqual(tensors[1].P, otherBefore, "a tensor outside the second list");
        });
    }
}
