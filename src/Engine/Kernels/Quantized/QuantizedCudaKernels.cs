using System.Collections.Concurrent;
using Engine.Kernels.Cuda;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels.Quantized;

/// <summary>
/// Launches native/cuda/qmatmul.cu on TorchSharp CUDA tensors through <see cref="CudaDriver"/>, on the caller's
/// stream and without waiting (as <see cref="CudaKernels"/> does for the log-prob kernels).
/// </summary>
internal static class QuantizedCudaKernels
{
    const uint Threads = 256; // QMM_THREADS
    const int Tile = 64;      // QMM_TILE

    sealed record Functions(IntPtr Context, IntPtr ForwardF32, IntPtr ForwardBf16, IntPtr BackwardF32, IntPtr BackwardBf16);

    static readonly ConcurrentDictionary<int, Functions> Devices = new();

    internal static void ForgetDevices() => Devices.Clear();

    static Functions For(int deviceIndex)
    {
        if (!CudaDriver.IsAvailable) throw new EngineException(CudaDriver.UnavailableReason!);
        return Devices.GetOrAdd(deviceIndex < 0 ? 0 : deviceIndex, i =>
        {
            IntPtr context = CudaDriver.PrimaryContext(i);
            var (major, minor) = CudaDriver.ComputeCapability(i);
            using var scope = CudaDriver.Enter(context);
            IntPtr module = CudaDriver.LoadModule(KernelCompiler.ImageForDevice(KernelSources.QuantizedMatmul, major, minor));
            return new Functions(context,
                CudaDriver.GetFunction(module, "qmatmul_forward_f32"),
                CudaDriver.GetFunction(module, "qmatmul_forward_bf16"),
                CudaDriver.GetFunction(module, "qmatmul_backward_f32"),
                CudaDriver.GetFunction(module, "qmatmul_backward_bf16"));
        });
    }

    /// <summary>c [m, out] = a [m, reduce] against the weight; a and c contiguous on the weight's device.</summary>
    public static void Launch(bool inputGradient, Tensor a, long m, QuantizedWeight weight, Tensor c)
    {
        long outCols = inputGradient ? weight.Cols : weight.Rows;
        long gridY = (m + Tile - 1) / Tile;
        if (weight.Rows > int.MaxValue || weight.Cols > int.MaxValue || m > int.MaxValue || gridY > 65535)
            throw new EngineException($"quantized matmul: [{m}] x [{weight.Rows}, {weight.Cols}] is too large for the CUDA kernel");
        bool bf16 = a.dtype == ScalarType.BFloat16;
        var f = For(a.device_index);
        var w = weight.NativeView();
        string e = KernelArguments.Element(bf16);
        using var args = new KernelArguments()
            .Pointer("a", TensorMemory.DataPointer(a), e).Int("m", (int)m).Int("format", w.Format).Int("rows", (int)weight.Rows)
            .Int("cols", (int)weight.Cols).Pointer("data", w.Data, "unsigned char").Pointer("absmax", w.Absmax, "float")
            .Pointer("qabsmax", w.QAbsmax, "unsigned char").Pointer("absmax2", w.Absmax2, "float").Pointer("code2", w.Code2, "float")
            .Float("offset", w.Offset).Pointer("nf4_code", TensorMemory.DataPointer(weight.DeviceNf4Code()), "float")
            .Pointer("c", TensorMemory.DataPointer(c), e);
        string name = (inputGradient ? "qmatmul_backward_" : "qmatmul_forward_") + (bf16 ? "bf16" : "f32");
        IntPtr function = inputGradient ? (bf16 ? f.BackwardBf16 : f.BackwardF32) : (bf16 ? f.ForwardBf16 : f.ForwardF32);
        args.Launch(f.Context, function, name, ((uint)((outCols + Tile - 1) / Tile), (uint)gridY), Threads);
    }
}
