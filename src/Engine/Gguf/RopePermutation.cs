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
        if (w.dim() is not (1 or 2)) throw new EngineException($"cannot permute a [{string.Join(", ", w.shape)}] attention tensor for RoPE");
        CheckPermutable(rows, cols, heads);
        long half = rows / heads / 2;
        using var view = toInterleaved ? w.reshape(heads, 2, half, cols) : w.reshape(heads, half, 2, cols);
        using var swapped = view.transpose(1, 2);
        return swapped.reshape(w.shape).contiguous();
    }

    /// <summary>
    /// The HF row that <see cref="ToInterleaved"/> puts at <paramref name="row"/>, for exporters that permute row by
    /// row: output (head h, pair j, half s) takes input (h, s, j). <paramref name="rows"/> must be a multiple of 2 × heads.
    /// </summary>
    public static long InterleavedSourceRow(long row, long rows, int heads)
    {
        long half = rows / heads / 2;
        long head = row / (2 * half), within = row % (2 * half);
        return head * 2 * half + within % 2 * half + within / 2;
    }

    /// <summary>Fails unless a [rows, …] attention weight can be permuted for <paramref name="heads"/> heads.</summary>
    public static void CheckPermutable(long rows, long cols, int heads)
    {
        if (heads <= 0 || rows % (2L * heads) != 0)
            throw new EngineException($"cannot permute a [{rows}, {cols}] attention weight for RoPE with {heads} heads (rows must be a multiple of 2 × heads)");
    }
}
