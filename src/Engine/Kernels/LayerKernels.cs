using Engine.Kernels.Cuda;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels;

/// <summary>The gate activation of a gated MLP: h = act(gate) · up.</summary>
public enum GatedActivation
{
    /// <summary>silu (Llama, Qwen, SmolLM).</summary>
    SwiGlu = 0,
    /// <summary>tanh-approximated GELU (Gemma).</summary>
    GeGlu = 1,
}

/// <summary>
/// The entry points layer code calls for RMSNorm, RoPE and the gated activation. Each runs the fused native kernel
/// (an autograd function) when <see cref="FusedKernels.Current"/> is fused and the tensors are f32/bf16 on the CPU
/// or CUDA, and otherwise returns null so the caller runs its TorchSharp composite (the reference). The autograd
/// functions run their kernels through the device dispatch below: CPU tensors to the native library, CUDA tensors
/// to native/cuda/fused_layers.cu (<see cref="LayerCudaKernels"/>).
/// </summary>
public static class LayerKernels
{
    /// <summary>Whether the fused kernels take tensors like <paramref name="x"/> under the current choice.</summary>
    public static bool Applies(Tensor x) =>
        FusedKernels.Current == KernelChoice.Fused && (x.dtype == ScalarType.Float32 || x.dtype == ScalarType.BFloat16) &&
        (x.device_type == DeviceType.CUDA || (x.device_type == DeviceType.CPU && NativeKernels.IsAvailable));

    /// <summary>
    /// RMSNorm over the last dimension: <c>w · x̂</c> (HF Llama; x̂ rounded to the dtype first) or, with
    /// <paramref name="unitOffset"/>, Gemma's <c>(1 + w) · x̂</c>; null when the fused kernel does not apply.
    /// </summary>
    public static Tensor? RmsNorm(Tensor x, Tensor weight, double eps, bool unitOffset)
    {
        if (!Applies(x) || weight.dtype != x.dtype || weight.dim() != 1 || weight.shape[0] != x.shape[^1] || !SameDevice(weight, x)) return null;
        return RmsNormFunction.Apply(x, weight, eps, unitOffset);
    }

    /// <summary>
    /// RoPE on queries or keys in [B, T, heads, headDim] layout, in place, with fp32 cos/sin [B·T, headDim/2] (one row
    /// per token, HF's rotate-half layout); null (nothing done) when the fused kernel does not apply.
    /// </summary>
    public static Tensor? Rope(Tensor x, Tensor cosHalf, Tensor sinHalf)
    {
        if (!Applies(x) || x.dim() != 4 || !x.is_contiguous()) return null;
        long tokens = x.shape[0] * x.shape[1];
        if (cosHalf.dtype != ScalarType.Float32 || !cosHalf.is_contiguous() || cosHalf.numel() != tokens * (x.shape[3] / 2)) return null;
        if (!sinHalf.is_contiguous() || !SameDevice(cosHalf, x) || !SameDevice(sinHalf, x)) return null;
        return RopeFunction.Apply(x, cosHalf, sinHalf);
    }

    /// <summary>act(gate) · up; null when the fused kernel does not apply.</summary>
    public static Tensor? Gated(Tensor gate, Tensor up, GatedActivation activation)
    {
        if (!Applies(gate) || up.dtype != gate.dtype || !gate.shape.SequenceEqual(up.shape) || !SameDevice(up, gate)) return null;
        return GatedActivationFunction.Apply(gate, up, activation);
    }

    // A kernel reads every input through the device pointer of the first: all must live on its device.
    static bool SameDevice(Tensor a, Tensor b) => LogProbKernels.SameDevice(a, b);

    internal static int Dtype(Tensor t) => t.dtype == ScalarType.BFloat16 ? NativeKernels.DtypeBf16 : NativeKernels.DtypeF32;

    internal static IntPtr Ptr(Tensor t) => TensorMemory.DataPointer(t);

    // The device dispatch of the autograd functions' kernels (contiguous tensors, outputs on the inputs' device).

    internal static void RmsNormForward(Tensor x, Tensor weight, float eps, int mode, Tensor y, Tensor invRms)
    {
        long n = x.shape[^1], rows = x.numel() / Math.Max(1, n);
        if (x.device_type == DeviceType.CUDA) LayerCudaKernels.RmsNormForward(x, weight, eps, mode, y, invRms);
        else NativeKernels.RmsNormForward(Ptr(x), Ptr(weight), Dtype(x), rows, n, eps, mode, Ptr(y), Ptr(invRms));
    }

    /// <summary>dx into <paramref name="dx"/>; returns dw [n] in the weight's dtype (the CPU kernel writes it so; the CUDA
    /// kernel sums it in fp32, converted here).</summary>
    internal static Tensor RmsNormBackward(Tensor x, Tensor weight, Tensor invRms, Tensor dy, int mode, Tensor dx)
    {
        long n = x.shape[^1], rows = x.numel() / Math.Max(1, n);
        if (x.device_type == DeviceType.CUDA)
        {
            using var dw32 = empty(new[] { n }, ScalarType.Float32, x.device);
            LayerCudaKernels.RmsNormBackward(x, weight, invRms, dy, mode, dx, dw32);
            return dw32.to(weight.dtype);
        }
        var dw = empty(new[] { n }, weight.dtype);
        NativeKernels.RmsNormBackward(Ptr(x), Ptr(weight), Ptr(invRms), Ptr(dy), Dtype(x), rows, n, mode, Ptr(dx), Ptr(dw));
        return dw;
    }

    internal static void Rope(Tensor x, Tensor cos, Tensor sin, bool inverse)
    {
        if (x.device_type == DeviceType.CUDA) LayerCudaKernels.Rope(x, cos, sin, inverse);
        else NativeKernels.Rope(Ptr(x), Dtype(x), Ptr(cos), Ptr(sin), x.shape[0] * x.shape[1], x.shape[2], x.shape[3], inverse);
    }

    /// <summary>
    /// RoPE from <paramref name="src"/> [B, T, heads, d] at its own strides (last dimension contiguous: the transposed
    /// gradient attention gives back) into the contiguous <paramref name="dst"/>, in one pass.
    /// </summary>
    internal static void RopeInto(Tensor src, Tensor dst, Tensor cos, Tensor sin, bool inverse)
    {
        if (src.device_type == DeviceType.CUDA)
        {
            LayerCudaKernels.RopeStrided(src, dst, cos, sin, inverse);
            return;
        }
        NativeKernels.RopeStrided(Ptr(src), src.stride(0), src.stride(1), src.stride(2), Ptr(dst), Dtype(src), Ptr(cos), Ptr(sin),
            src.shape[0], src.shape[1], src.shape[2], src.shape[3], inverse);
    }

    internal static void GluForward(int activation, Tensor gate, Tensor up, Tensor h)
    {
        if (gate.device_type == DeviceType.CUDA) LayerCudaKernels.GluForward(activation, gate, up, h);
        else NativeKernels.GluForward(activation, Ptr(gate), Ptr(up), Dtype(gate), gate.numel(), Ptr(h));
    }

    internal static void GluBackward(int activation, Tensor gate, Tensor up, Tensor dh, Tensor dGate, Tensor dUp)
    {
        if (gate.device_type == DeviceType.CUDA) LayerCudaKernels.GluBackward(activation, gate, up, dh, dGate, dUp);
        else NativeKernels.GluBackward(activation, Ptr(gate), Ptr(up), Ptr(dh), Dtype(gate), gate.numel(), Ptr(dGate), Ptr(dUp));
    }
}
