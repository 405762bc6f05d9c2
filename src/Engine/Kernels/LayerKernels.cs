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
/// (an autograd function) when <see cref="FusedKernels.Current"/> is fused and the tensors are f32/bf16 on the CPU,
/// and otherwise returns null so the caller runs its TorchSharp composite (the reference). CUDA tensors take the
/// composite: the CUDA versions of these kernels are compiled and emulated (native/cuda/fused_layers.cu) but not
/// yet launched.
/// </summary>
public static class LayerKernels
{
    /// <summary>Whether the fused kernels take tensors like <paramref name="x"/> under the current choice.</summary>
    public static bool Applies(Tensor x) =>
        FusedKernels.Current == KernelChoice.Fused && x.device_type == DeviceType.CPU &&
        (x.dtype == ScalarType.Float32 || x.dtype == ScalarType.BFloat16) && NativeKernels.IsAvailable;

    /// <summary>
    /// RMSNorm over the last dimension: <c>w · x̂</c> (HF Llama; x̂ rounded to the dtype first) or, with
    /// <paramref name="unitOffset"/>, Gemma's <c>(1 + w) · x̂</c>; null when the fused kernel does not apply.
    /// </summary>
    public static Tensor? RmsNorm(Tensor x, Tensor weight, double eps, bool unitOffset)
    {
        if (!Applies(x) || weight.dtype != x.dtype || weight.dim() != 1 || weight.shape[0] != x.shape[^1]) return null;
        return RmsNormFunction.apply(x, weight, eps, unitOffset);
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
        return RopeFunction.apply(x, cosHalf, sinHalf);
    }

    /// <summary>act(gate) · up; null when the fused kernel does not apply.</summary>
    public static Tensor? Gated(Tensor gate, Tensor up, GatedActivation activation)
    {
        if (!Applies(gate) || up.dtype != gate.dtype || !gate.shape.SequenceEqual(up.shape)) return null;
        return GatedActivationFunction.apply(gate, up, activation);
    }

    internal static int Dtype(Tensor t) => t.dtype == ScalarType.BFloat16 ? NativeKernels.DtypeBf16 : NativeKernels.DtypeF32;

    internal static IntPtr Ptr(Tensor t) => TensorMemory.DataPointer(t);
}
