using Engine.Gguf;
using Engine.Gguf.Quantization;

namespace Engine.Tests.Gguf;

/// <summary>
/// Deliberate damage to one tensor of a GGUF file in place, of the kinds an exporter bug causes: two rows swapped,
/// q/k rows left in Hugging Face order (the RoPE permutation forgotten), a wrong scale, a zeroed norm. The file's
/// layout and types stay valid, so llama.cpp loads it as usual.
/// </summary>
public static class GgufCorruption
{
    public enum Kind { SwappedRows, UnpermutedRows, WrongScale, ZeroedNorm }

    /// <summary>Applies <paramref name="kind"/> to the tensor the kind targets in a llama-architecture file.</summary>
    public static string Apply(string path, Kind kind, int heads)
    {
        switch (kind)
        {
            case Kind.SwappedRows: SwapRows(path, "blk.0.ffn_down.weight", 0, 1); return "blk.0.ffn_down.weight rows 0 and 1 swapped";
            case Kind.UnpermutedRows: Unpermute(path, "blk.0.attn_q.weight", heads); return "blk.0.attn_q.weight in HF order (RoPE permutation missing)";
            case Kind.WrongScale: Scale(path, "blk.1.attn_v.weight", 1.5f); return "blk.1.attn_v.weight scaled by 1.5";
            default: Scale(path, "blk.1.ffn_norm.weight", 0f); return "blk.1.ffn_norm.weight zeroed";
        }
    }

    public static void SwapRows(string path, string tensor, long a, long b)
    {
        var (offset, rowBytes, _, _) = Locate(path, tensor);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var rowA = Read(fs, offset + a * rowBytes, rowBytes);
        var rowB = Read(fs, offset + b * rowBytes, rowBytes);
        Write(fs, offset + a * rowBytes, rowB);
        Write(fs, offset + b * rowBytes, rowA);
    }

    /// <summary>Stores the rows in the order llama.cpp's converter would have taken them from (per head: rows 2i, 2i+1
    /// come from rows i and i + d/2), i.e. as if the exporter had not permuted them.</summary>
    public static void Unpermute(string path, string tensor, int heads)
    {
        var (offset, rowBytes, rows, _) = Locate(path, tensor);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var stored = Read(fs, offset, rows * rowBytes);
        var result = new byte[stored.Length];
        long headDim = rows / heads;
        for (long h = 0; h < heads; h++)
            for (long i = 0; i < headDim / 2; i++)
                for (long j = 0; j < 2; j++)
                    Array.Copy(stored, (h * headDim + 2 * i + j) * rowBytes, result, (h * headDim + j * headDim / 2 + i) * rowBytes, rowBytes);
        Write(fs, offset, result);
    }

    /// <summary>Multiplies every value of the tensor by <paramref name="factor"/> and stores it again in its own type.</summary>
    public static void Scale(string path, string tensor, float factor)
    {
        var (offset, rowBytes, rows, type) = Locate(path, tensor);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var bytes = Read(fs, offset, rows * rowBytes);
        long elements = rows * (rowBytes / GgmlTypes.BlockBytes(type) * GgmlTypes.BlockSize(type));
        var values = new float[elements];
        GgmlCodec.Decode(type, bytes, values);
        for (int i = 0; i < values.Length; i++) values[i] *= factor;
        GgmlCodec.Encode(type, values, bytes);
        Write(fs, offset, bytes);
    }

    static (long Offset, long RowBytes, long Rows, GgmlType Type) Locate(string path, string tensor)
    {
        using var f = GgufFile.Open(path);
        var t = f.Tensor(tensor);
        return (f.DataOffset + t.Offset, GgmlTypes.RowBytes(t.Type, t.RowLength), t.Rows, t.Type);
    }

    static byte[] Read(FileStream fs, long position, long count)
    {
        var buffer = new byte[count];
        fs.Position = position;
        fs.ReadExactly(buffer);
        return buffer;
    }

    static void Write(FileStream fs, long position, byte[] data)
    {
        fs.Position = position;
        fs.Write(data);
    }
}
