using Engine.Kernels.Quantized;
using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Adapters;

/// <summary>
/// A QLoRA frozen base: the linear layer's weight held quantized and multiplied by the dequantizing kernel
/// (<see cref="QuantizedMatmul"/>), which passes gradient to the input only. Owns its <see cref="QuantizedWeight"/>.
/// </summary>
public sealed class QuantizedLinearBase : IFrozenLinearBase, IDisposable
{
    public QuantizedWeight Weight { get; }

    public QuantizedLinearBase(QuantizedWeight weight) => Weight = weight;

    public Tensor Forward(Tensor x) => QuantizedMatmul.Apply(x, Weight);

    public void Dispose() => Weight.Dispose();
}

/// <summary>Quantizing the frozen base of a LoRA run's targeted layers (TRL's --load-in-4bit / --load-in-8bit).</summary>
public static class QuantizedFrozenBase
{
    /// <summary>The storage format <paramref name="settings"/> asks for; null for a dense base.</summary>
    public static QuantFormat? FormatOf(LoraSettings settings) => settings.Quantization switch
    {
        BaseQuantization.Nf4 => settings.NestedQuantization ? QuantFormat.Nf4DoubleQuant : QuantFormat.Nf4,
        BaseQuantization.Int8 => QuantFormat.Int8,
        _ => null,
    };

    /// <summary>
    /// Quantizes <paramref name="layer"/>'s weight, installs it as the layer's frozen base and frees the dense weight:
    /// the parameter keeps its shape (planners and adapters read it) but becomes a one-element stride-0 view, so any
    /// accidental write to it fails loudly instead of computing with a stale copy.
    /// </summary>
    public static QuantizedLinearBase Install(Projection layer, QuantFormat format)
    {
        if (layer.FrozenBase != null) throw new EngineException("the layer's frozen base is already quantized");
        var quantized = new QuantizedLinearBase(QuantizedWeight.Quantize(layer.weight, format));
        using (no_grad())
        {
            var shape = layer.weight.shape;
            using var placeholder = zeros(new long[] { 1, 1 }, layer.weight.dtype, layer.weight.device).expand(shape);
            layer.weight.set_(placeholder);
        }
        layer.FrozenBase = quantized;
        return quantized;
    }

    /// <summary>Undoes <see cref="Install"/>: the dense weight becomes the dequantized one (in its dtype) and the
    /// quantized base is freed. Used to merge adapters into a quantized base.</summary>
    public static void Dequantize(Projection layer)
    {
        if (layer.FrozenBase is not QuantizedLinearBase quantized) return;
        using (no_grad())
        using (NewDisposeScope())
            layer.weight.set_(quantized.Weight.Dequantize(ScalarType.Float32).to(layer.weight.dtype, layer.weight.device).contiguous());
        layer.FrozenBase = null;
        quantized.Dispose();
    }
}
