using System.Collections.Concurrent;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels.Cuda;

/// <summary>
/// Launches native/cuda/fused_layers.cu (RMSNorm, RoPE, SwiGLU/GeGLU, forward and backward, f32 and bf16) on the
/// device memory of TorchSharp CUDA tensors; chosen by <see cref="LayerKernels"/> for CUDA tensors. Launches are
/// asynchronous on torch's stream (<see cref="CudaKernels.CallerStream"/>), as for the log-prob kernels. Grids follow
/// the .cu's launch contract: one block per row (RMSNorm forward) or token (RoPE), one per chunk of rows (RMSNorm
/// backward, then a column reduce), grid-stride blocks for the elementwise activations. Inputs are contiguous.
/// </summary>
internal static class LayerCudaKernels
{
    public const uint Threads = 256;               // FL_THREADS in fused_layers.cu
    /// <summary>The RMSNorm backward's row chunks: enough blocks to fill a large GPU, a bounded [chunks, n] fp32 scratch.
    /// (Not const: the emulated tests shrink it so that small shapes take the many-rows-per-block path.)</summary>
    internal static int TargetBackwardChunks = 512;
    /// <summary>Blocks of the grid-stride activation kernels at most (a few waves on any GPU; the loop covers the rest).
    /// (Not const: the emulated tests shrink it so that small shapes take the grid-stride path.)</summary>
    internal static long MaxElementwiseBlocks = 4096;

    sealed record Functions(IntPtr Context, IReadOnlyDictionary<string, IntPtr> ByName);

    static readonly ConcurrentDictionary<int, Functions> Devices = new();

    internal static void ForgetDevices() => Devices.Clear();

    static Functions For(int deviceIndex)
    {
        if (!CudaDriver.IsAvailable) throw Unavailable();
        return Devices.GetOrAdd(deviceIndex < 0 ? 0 : deviceIndex, i => Load(i, KernelSources.FusedLayers));
    }

    static Functions Load(int deviceIndex, string file)
    {
        IntPtr context = CudaDriver.PrimaryContext(deviceIndex);
        var (major, minor) = CudaDriver.ComputeCapability(deviceIndex);
        using var scope = CudaDriver.Enter(context);
        IntPtr module = CudaDriver.LoadModule(KernelCompiler.ImageForDevice(file, major, minor));
        return new Functions(context, KernelSources.Kernels[file].ToDictionary(k => k, k => CudaDriver.GetFunction(module, k)));
    }

    /// <summary>
    /// Why a CUDA tensor cannot take the CUDA kernels here. A CPU-only build (TorchSharp-cpu) cannot hold CUDA
    /// tensors at all, so the message names the build first, then the driver's own reason.
    /// </summary>
    internal static EngineException Unavailable()
    {
        string driver = CudaDriver.UnavailableReason ?? "the NVIDIA driver did not initialise";
        bool torchCuda;
        try { torchCuda = cuda.is_available(); }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException) { torchCuda = false; }
        return new EngineException(torchCuda
            ? $"the CUDA kernels cannot run: {driver}"
            : "CUDA build needed for CUDA tensors: TorchSharp has no CUDA here (the default build is CPU-only; build with " +
              $"`dotnet build -p:EngineBackend=cuda` on a machine with an NVIDIA GPU), and {driver}; " +
              "--kernels torch runs the composites instead");
    }

    static int Checked(long value, string what)
    {
        if (value > int.MaxValue) throw new EngineException($"{what} = {value} is too large for the CUDA layer kernels");
        return (int)value;
    }

    static string Suffix(Tensor t) => t.dtype == ScalarType.BFloat16 ? "bf16" : "f32";

    /// <summary>Block counts of the RMSNorm backward: (rows per block, chunks), every row in exactly one chunk.</summary>
    public static (int RowsPerBlock, int Chunks) BackwardChunks(long rows)
    {
        long perBlock = Math.Max(1, (rows + TargetBackwardChunks - 1) / TargetBackwardChunks);
        return ((int)perBlock, (int)((rows + perBlock - 1) / perBlock));
    }

    /// <summary>Blocks of a grid-stride launch over <paramref name="count"/> elements (at least one).</summary>
    public static uint ElementwiseBlocks(long count) => (uint)Math.Clamp((count + Threads - 1) / Threads, 1, MaxElementwiseBlocks);

    /// <summary>Blocks of rmsnorm_dw_reduce: one column per thread.</summary>
    public static uint ColumnBlocks(long n) => (uint)Math.Max(1, (n + Threads - 1) / Threads);

    /// <summary>y = RMSNorm(x) over the last dimension, inv_rms [rows] fp32; mode 0 = w·x̂, 1 = (1 + w)·x̂.</summary>
    public static void RmsNormForward(Tensor x, Tensor weight, float eps, int mode, Tensor y, Tensor invRms)
    {
        int n = Checked(x.shape[^1], "the normalised size");
        int rows = Checked(x.numel() / Math.Max(1, x.shape[^1]), "rows");
        if (rows == 0 || n == 0) return;
        var f = For(x.device_index);
        string e = KernelArguments.Element(x.dtype == ScalarType.BFloat16);
        string kernel = "rmsnorm_forward_" + Suffix(x);
        using var a = new KernelArguments()
            .Pointer("x", TensorMemory.DataPointer(x), e).Pointer("w", TensorMemory.DataPointer(weight), e).Int("n", n)
            .Float("eps", eps).Int("mode", mode).Pointer("y", TensorMemory.DataPointer(y), e)
            .Pointer("inv_rms", TensorMemory.DataPointer(invRms), "float");
        a.Launch(f.Context, f.ByName[kernel], kernel, ((uint)rows, 1), Threads);
    }

    /// <summary>dx (x's dtype) and dw (fp32 [n]) from dy; the chunk partials are reduced in order, so dw has fixed bits.</summary>
    public static void RmsNormBackward(Tensor x, Tensor weight, Tensor invRms, Tensor dy, int mode, Tensor dx, Tensor dw)
    {
        int n = Checked(x.shape[^1], "the normalised size");
        int rows = Checked(x.numel() / Math.Max(1, x.shape[^1]), "rows");
        if (n == 0) return;
        if (rows == 0)
        {
            dw.zero_();
            return;
        }
        var f = For(x.device_index);
        var (rowsPerBlock, chunks) = BackwardChunks(rows);
        // Freed after the enqueue: torch's caching allocator hands it to later work on the same stream only.
        using var partial = empty(new long[] { chunks, n }, ScalarType.Float32, x.device);
        string e = KernelArguments.Element(x.dtype == ScalarType.BFloat16);
        string kernel = "rmsnorm_backward_" + Suffix(x);
        using (var a = new KernelArguments()
            .Pointer("x", TensorMemory.DataPointer(x), e).Pointer("w", TensorMemory.DataPointer(weight), e)
            .Pointer("inv_rms", TensorMemory.DataPointer(invRms), "float").Pointer("dy", TensorMemory.DataPointer(dy), e)
            .Int("rows", rows).Int("n", n).Int("mode", mode).Int("rows_per_block", rowsPerBlock)
            .Pointer("dx", TensorMemory.DataPointer(dx), e).Pointer("dw_partial", TensorMemory.DataPointer(partial), "float"))
            a.Launch(f.Context, f.ByName[kernel], kernel, ((uint)chunks, 1), Threads);
        using var r = new KernelArguments()
            .Pointer("dw_partial", TensorMemory.DataPointer(partial), "float").Int("chunks", chunks).Int("n", n)
            .Pointer("dw", TensorMemory.DataPointer(dw), "float");
        r.Launch(f.Context, f.ByName["rmsnorm_dw_reduce"], "rmsnorm_dw_reduce", (ColumnBlocks(n), 1), Threads);
    }

    /// <summary>RoPE in place on x [B, T, heads, headDim] with fp32 cos/sin [B·T, headDim/2]; inverse for the backward.</summary>
    public static void Rope(Tensor x, Tensor cos, Tensor sin, bool inverse)
    {
        int tokens = Checked(x.shape[0] * x.shape[1], "tokens");
        int heads = Checked(x.shape[2], "heads"), headDim = Checked(x.shape[3], "head_dim");
        if (tokens == 0 || heads == 0 || headDim < 2) return;
        var f = For(x.device_index);
        string kernel = "rope_" + Suffix(x);
        using var a = new KernelArguments()
            .Pointer("x", TensorMemory.DataPointer(x), KernelArguments.Element(x.dtype == ScalarType.BFloat16))
            .Pointer("cos", TensorMemory.DataPointer(cos), "float").Pointer("sin", TensorMemory.DataPointer(sin), "float")
            .Int("heads", heads).Int("head_dim", headDim).Int("inverse", inverse ? 1 : 0);
        a.Launch(f.Context, f.ByName[kernel], kernel, ((uint)tokens, 1), Threads);
    }

    /// <summary>
    /// RoPE from src [B, T, heads, headDim] at its own strides (headDim contiguous: the transposed gradient of the
    /// backward) into the contiguous dst, one pass; cos/sin [B·T, headDim/2].
    /// </summary>
    public static void RopeStrided(Tensor src, Tensor dst, Tensor cos, Tensor sin, bool inverse)
    {
        int tokens = Checked(src.shape[0] * src.shape[1], "tokens");
        int seq = Checked(src.shape[1], "seq"), heads = Checked(src.shape[2], "heads"), headDim = Checked(src.shape[3], "head_dim");
        if (tokens == 0 || heads == 0 || headDim < 2) return;
        var f = For(src.device_index);
        string e = KernelArguments.Element(src.dtype == ScalarType.BFloat16);
        string kernel = "rope_strided_" + Suffix(src);
        using var a = new KernelArguments()
            .Pointer("src", TensorMemory.DataPointer(src), e)
            .Long("sb", src.stride(0)).Long("st", src.stride(1)).Long("sh", src.stride(2))
            .Pointer("dst", TensorMemory.DataPointer(dst), e)
            .Pointer("cos", TensorMemory.DataPointer(cos), "float").Pointer("sin", TensorMemory.DataPointer(sin), "float")
            .Int("seq", seq).Int("heads", heads).Int("head_dim", headDim).Int("inverse", inverse ? 1 : 0);
        a.Launch(f.Context, f.ByName[kernel], kernel, ((uint)tokens, 1), Threads);
    }

    /// <summary>h = act(gate) · up, elementwise (act 0 = silu, 1 = tanh-GELU).</summary>
    public static void GluForward(int activation, Tensor gate, Tensor up, Tensor h)
    {
        long count = gate.numel();
        if (count == 0) return;
        var f = For(gate.device_index);
        string e = KernelArguments.Element(gate.dtype == ScalarType.BFloat16);
        string kernel = "glu_forward_" + Suffix(gate);
        using var a = new KernelArguments()
            .Int("act", activation).Pointer("gate", TensorMemory.DataPointer(gate), e).Pointer("up", TensorMemory.DataPointer(up), e)
            .Long("count", count).Pointer("h", TensorMemory.DataPointer(h), e);
        a.Launch(f.Context, f.ByName[kernel], kernel, (ElementwiseBlocks(count), 1), Threads);
    }

    /// <summary>d_gate = dh · up · act'(gate), d_up = dh · act(gate), the activation recomputed.</summary>
    public static void GluBackward(int activation, Tensor gate, Tensor up, Tensor dh, Tensor dGate, Tensor dUp)
    {
        long count = gate.numel();
        if (count == 0) return;
        var f = For(gate.device_index);
        string e = KernelArguments.Element(gate.dtype == ScalarType.BFloat16);
        string kernel = "glu_backward_" + Suffix(gate);
        using var a = new KernelArguments()
            .Int("act", activation).Pointer("gate", TensorMemory.DataPointer(gate), e).Pointer("up", TensorMemory.DataPointer(up), e)
            .Pointer("dh", TensorMemory.DataPointer(dh), e).Long("count", count)
            .Pointer("d_gate", TensorMemory.DataPointer(dGate), e).Pointer("d_up", TensorMemory.DataPointer(dUp), e);
        a.Launch(f.Context, f.ByName[kernel], kernel, (ElementwiseBlocks(count), 1), Threads);
    }
}
