using Engine.Util;
using static TorchSharp.torch;
using static TorchSharp.torch.autograd;

namespace Engine.Kernels.Quantized;

/// <summary>
/// y = x · dequant(W)ᵀ with the weight dequantized on the fly inside the kernel (native/src/qmatmul.h on the CPU,
/// native/cuda/qmatmul.cu on CUDA): the frozen base of a QLoRA linear layer. x [..., in] is f32 or bf16; y
/// [..., out] has x's dtype; products accumulate in f32 (bf16 activations meet the weight rounded to bf16, as
/// dequantize-then-matmul in bf16 does). Gradient flows to x only (dx = dy · dequant(W)); the weight is frozen.
/// </summary>
public static class QuantizedMatmul
{
    /// <summary>The autograd op: differentiable in <paramref name="x"/>.</summary>
    public static Tensor Apply(Tensor x, QuantizedWeight weight)
    {
        Validate(x, weight, weight.Cols, "x");
        return QuantizedMatmulFunction.apply(x, weight)[0];
    }

    /// <summary>The forward alone, no graph: x [..., in] → [..., out].</summary>
    public static Tensor Forward(Tensor x, QuantizedWeight weight)
    {
        Validate(x, weight, weight.Cols, "x");
        return Run(x, weight, inputGradient: false);
    }

    /// <summary>The input gradient alone: dy [..., out] → dx = dy · dequant(W), [..., in].</summary>
    public static Tensor InputGradient(Tensor dy, QuantizedWeight weight)
    {
        Validate(dy, weight, weight.Rows, "dy");
        return Run(dy, weight, inputGradient: true);
    }

    static void Validate(Tensor a, QuantizedWeight weight, long inner, string name)
    {
        if (a.dtype is not (ScalarType.Float32 or ScalarType.BFloat16))
            throw new EngineException($"quantized matmul: {name} must be float32 or bfloat16, got {a.dtype}");
        if (a.dim() < 1 || a.shape[^1] != inner)
            throw new EngineException($"quantized matmul: {name} of shape [{string.Join(", ", a.shape)}] does not end in {inner} (weight [{weight.Rows}, {weight.Cols}])");
        if (a.device_type != weight.Device.type || (a.device_type == DeviceType.CUDA && a.device_index != weight.Device.index))
            throw new EngineException($"quantized matmul: {name} is on {a.device}, the weight on {weight.Device}");
        if (a.device_type is not (DeviceType.CPU or DeviceType.CUDA))
            throw new EngineException($"quantized matmul: unsupported device {a.device}");
    }

    internal static Tensor Run(Tensor a, QuantizedWeight weight, bool inputGradient)
    {
        long inner = a.shape[^1], outer = inputGradient ? weight.Cols : weight.Rows;
        long[] outShape = a.shape[..^1].Append(outer).ToArray();
        using var contiguous = a.contiguous();
        using var flat = contiguous.reshape(-1, inner);
        long m = flat.shape[0];
        var output = empty(new[] { m, outer }, a.dtype, a.device);
        if (m > 0)
        {
            if (a.device_type == DeviceType.CUDA) QuantizedCudaKernels.Launch(inputGradient, flat, m, weight, output);
            else
            {
                int dtype = a.dtype == ScalarType.BFloat16 ? NativeKernels.DtypeBf16 : NativeKernels.DtypeF32;
                if (inputGradient)
                    QuantizedNative.BackwardInput(TensorMemory.DataPointer(flat), dtype, m, weight.NativeView(), TensorMemory.DataPointer(output), dtype);
                else
                    QuantizedNative.Forward(TensorMemory.DataPointer(flat), dtype, m, weight.NativeView(), TensorMemory.DataPointer(output), dtype);
            }
        }
        using (output) return output.reshape(outShape);
    }
}

/// <summary>The autograd function behind <see cref="QuantizedMatmul.Apply"/>: saves only the weight (already alive).</summary>
internal sealed class QuantizedMatmulFunction : MultiTensorFunction<QuantizedMatmulFunction>
{
    public override string Name => "QuantizedMatmul";

    public override List<Tensor> forward(AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var weight = (QuantizedWeight)vars[1];
        ctx.save_data("weight", weight);
        ctx.save_data("dtype", x.dtype);
        return new List<Tensor> { QuantizedMatmul.Run(x, weight, inputGradient: false) };
    }

    public override List<Tensor> backward(AutogradContext ctx, List<Tensor> grad_outputs)
    {
        var weight = (QuantizedWeight)ctx.get_data("weight");
        var dtype = (ScalarType)ctx.get_data("dtype");
        using var g = grad_outputs[0].to(dtype);
        return new List<Tensor> { QuantizedMatmul.Run(g, weight, inputGradient: true), null! };
    }
}
