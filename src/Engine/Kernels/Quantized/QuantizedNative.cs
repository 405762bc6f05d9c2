using System.Runtime.InteropServices;

namespace Engine.Kernels.Quantized;

/// <summary>The quantized-weight entry points of libengine_native.so (engine_native.h, "Quantized weights").</summary>
internal static unsafe class QuantizedNative
{
    /// <summary>EngineQuantWeight of engine_native.h.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Weight
    {
        public int Format;
        public int Reserved;
        public long Rows, Cols;
        public IntPtr Data, Absmax, QAbsmax, Absmax2, Code2;
        public float Offset;
    }

    sealed class Api
    {
        public delegate* unmanaged<float*, void> Nf4Code;
        public delegate* unmanaged<float*, void> DynamicCode;
        public delegate* unmanaged<void*, int, Weight*, int> Quantize;
        public delegate* unmanaged<Weight*, int, void*, int> Dequantize;
        public delegate* unmanaged<void*, int, long, Weight*, void*, int, int> Forward;
        public delegate* unmanaged<void*, int, long, Weight*, void*, int, int> BackwardInput;
        public delegate* unmanaged<int> Bf16DotAvailable;
    }

    static readonly Lazy<Api> Loaded = new(Load);

    static Api Load()
    {
        NativeKernels.EnsureAvailable();
        IntPtr handle = NativeLibrary.Load(NativeKernels.LoadedFrom!);
        try
        {
            return new Api
            {
                Nf4Code = (delegate* unmanaged<float*, void>)NativeLibrary.GetExport(handle, "engine_quant_nf4_code"),
                DynamicCode = (delegate* unmanaged<float*, void>)NativeLibrary.GetExport(handle, "engine_quant_dynamic_code"),
                Quantize = (delegate* unmanaged<void*, int, Weight*, int>)NativeLibrary.GetExport(handle, "engine_quantize"),
                Dequantize = (delegate* unmanaged<Weight*, int, void*, int>)NativeLibrary.GetExport(handle, "engine_dequantize"),
                Forward = (delegate* unmanaged<void*, int, long, Weight*, void*, int, int>)NativeLibrary.GetExport(handle, "engine_qmatmul_forward"),
                BackwardInput = (delegate* unmanaged<void*, int, long, Weight*, void*, int, int>)NativeLibrary.GetExport(handle, "engine_qmatmul_backward_input"),
                Bf16DotAvailable = (delegate* unmanaged<int>)NativeLibrary.GetExport(handle, "engine_qmatmul_bf16_dot_available"),
            };
        }
        catch (EntryPointNotFoundException e)
        {
            throw new EngineException($"{NativeKernels.LoadedFrom} lacks the quantized-weight kernels ({e.Message}): run ./build.sh to rebuild native/");
        }
    }

    static Api Require() => Loaded.Value;

    public static float[] Nf4Code()
    {
        var code = new float[16];
        fixed (float* p = code) Require().Nf4Code(p);
        return code;
    }

    public static float[] DynamicCode()
    {
        var code = new float[256];
        fixed (float* p = code) Require().DynamicCode(p);
        return code;
    }

    /// <summary>True when bf16 activations run on the AVX512-BF16 dot-product kernel.</summary>
    public static bool Bf16DotAvailable => Require().Bf16DotAvailable() != 0;

    public static void Quantize(IntPtr weight, int dtype, ref Weight q)
    {
        fixed (Weight* pq = &q) Check(Require().Quantize((void*)weight, dtype, pq), "engine_quantize");
    }

    public static void Dequantize(Weight q, int dtype, IntPtr output) => Check(Require().Dequantize(&q, dtype, (void*)output), "engine_dequantize");

    public static void Forward(IntPtr x, int xDtype, long m, Weight q, IntPtr y, int yDtype)
    {
        _ = NativeKernels.Threads; // follows torch's thread count (docs/kernels.md, "Threads")
        Check(Require().Forward((void*)x, xDtype, m, &q, (void*)y, yDtype), "engine_qmatmul_forward");
    }

    public static void BackwardInput(IntPtr dy, int dyDtype, long m, Weight q, IntPtr dx, int dxDtype)
    {
        _ = NativeKernels.Threads;
        Check(Require().BackwardInput((void*)dy, dyDtype, m, &q, (void*)dx, dxDtype), "engine_qmatmul_backward_input");
    }

    static void Check(int status, string function)
    {
        if (status != 0) throw new ArgumentException($"{function}: invalid argument (status {status}; a bug in the caller)");
    }
}
