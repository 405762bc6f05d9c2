using static TorchSharp.torch;

namespace Engine.Models;

/// <summary>A frozen linear base stored other than as a dense weight (e.g. quantized), computing x·Wᵀ on the fly.</summary>
public interface IFrozenLinearBase
{
    /// <param name="x">[.., in] in the model's compute dtype</param>
    /// <returns>[.., out] in <paramref name="x"/>'s dtype</returns>
    Tensor Forward(Tensor x);
}

/// <summary>An additive update to a linear layer's output (LoRA): returns the layer's output given its input and the base output.</summary>
public interface ILinearAdapter
{
    Tensor Forward(Tensor x, Tensor baseOutput);
}
