namespace Engine.Gguf;

/// <summary>
/// One tensor's entry in a GGUF file. <see cref="Dims"/> are in ggml order (innermost first, so a PyTorch
/// [out, in] weight has Dims {in, out}); <see cref="Offset"/> is relative to the start of the data section.
/// </summary>
public sealed record GgufTensorInfo(string Name, long[] Dims, GgmlType Type, long Offset, long ByteSize)
{
    public long ElementCount => Dims.Aggregate(1L, (a, d) => a * d);
    /// <summary>Elements per row (ne[0]).</summary>
    public long RowLength => Dims.Length > 0 ? Dims[0] : 1;
    public long Rows => Dims.Length > 0 ? ElementCount / Math.Max(1, Dims[0]) : 1;
    /// <summary>The shape in PyTorch order (outermost first).</summary>
    public long[] TorchShape => Dims.Reverse().ToArray();
}
