using static TorchSharp.torch;

namespace Engine.Gguf;

/// <summary>
/// HF checkpoints order the rows of q_proj/k_proj for rotate-half RoPE (each head's first half pairs with
/// its second half); llama.cpp rotates adjacent pairs. Export interleaves each head's halves, import undoes it.
/// </summary>
public static class RopePermutation
{
    /// <summary>HF [rows, cols] → llama.cpp order: reshape(heads, 2, rows/heads/2, cols).swap(1, 2).</summary>
    public static Tensor ToInterleaved(Tensor w, int heads) => Permute(w, heads, toInterleaved: true);

    /// <summary>llama.cpp order → HF: the inverse of <see cref="ToInterleaved"/>.</summary>
    public static Tensor ToRotateHalf(Tensor w, int heads) => Permute(w, heads, toInterleaved: false);

    static Tensor Permute(Tensor w, int heads, bool toInterleaved)
    {
        // A bias [rows] permutes like a weight with one column.
        long rows = w.shape[0], cols = w.dim() == 2 ? w.shape[1] : 1;
        if (w.dim() is not (1 or 2) || heads <= 0 || rows % (2L * heads) != 0)
            throw new EngineException($"cannot permute a [{string.Join(", ", w.shape)}] attention tensor for RoPE with {heads} heads (rows must be a multiple of 2 × heads)");
        long half = rows / heads / 2;
        using var view = toInterleaved ? w.reshape(heads, 2, half, cols) : w.reshape(heads, half, 2, cols);
        using var swapped = view.transpose(1, 2);
        return swapped.reshape(w.shape).contiguous();
    }
}
