using System.Text;

namespace Engine.Gguf;

/// <summary>
/// Where everything goes in a GGUF file: the header (metadata and tensor infos, zero-padded to the alignment),
/// each tensor's absolute file offset, and the total size (the last tensor padded too). Bytes the writer does
/// not fill (padding) are zero.
/// </summary>
public sealed record GgufLayout(byte[] Header, IReadOnlyList<long> TensorOffsets, long FileSize);

/// <summary>
/// Writes a GGUF v3 file: header, metadata, tensor infos, then each tensor's data padded to the alignment,
/// the last one included (llama.cpp's loader rejects a file whose final tensor is not padded). Tensor data
/// is produced on demand, one tensor at a time, so a model is never held twice in memory; or the caller takes
/// the <see cref="Layout"/> and writes the tensors at their offsets itself (the exporter, in parallel).
/// </summary>
public sealed class GgufWriter
{
    /// <summary>A tensor to write: <paramref name="WriteData"/> must write exactly ByteSize bytes (null when the caller writes it at its layout offset).</summary>
    public sealed record PendingTensor(string Name, long[] Dims, GgmlType Type, long ByteSize, Action<Stream>? WriteData);

    readonly List<KeyValuePair<string, GgufValue>> _metadata = new();
    readonly List<PendingTensor> _tensors = new();
    readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public uint Alignment { get; }

    public GgufWriter(uint alignment = GgufFile.DefaultAlignment)
    {
        if (alignment == 0 || alignment % 8 != 0 || (alignment & (alignment - 1)) != 0)
            throw new ArgumentException("alignment must be a power of two and a multiple of 8", nameof(alignment));
        Alignment = alignment;
        if (alignment != GgufFile.DefaultAlignment) Add(GgufKeys.Alignment.Name(), GgufValue.U32(alignment));
    }

    public IReadOnlyList<PendingTensor> Tensors => _tensors;

    public void Add(string key, GgufValue value)
    {
        if (_metadata.Any(kv => kv.Key == key)) throw new ArgumentException($"metadata key '{key}' added twice");
        _metadata.Add(new(key, value));
    }

    /// <summary>Adds a tensor with ggml-order <paramref name="dims"/> (innermost first); without <paramref name="writeData"/> only its place in the <see cref="Layout"/> is reserved.</summary>
    public PendingTensor AddTensor(string name, long[] dims, GgmlType type, Action<Stream>? writeData = null)
    {
        if (!_names.Add(name)) throw new ArgumentException($"tensor '{name}' added twice");
        if (Encoding.UTF8.GetByteCount(name) > GgufFile.MaxTensorName) throw new ArgumentException($"tensor name '{name}' is longer than {GgufFile.MaxTensorName} bytes");
        if (dims.Length is 0 or > GgufFile.MaxDims) throw new ArgumentException($"tensor '{name}' has {dims.Length} dimensions");
        if (!GgmlTypes.FitsRow(type, dims[0])) throw new ArgumentException($"tensor '{name}': row length {dims[0]} does not fit {GgmlTypes.Name(type)} blocks");
        long bytes = GgmlTypes.RowBytes(type, dims[0]);
        for (int i = 1; i < dims.Length; i++) bytes = checked(bytes * dims[i]);
        var t = new PendingTensor(name, (long[])dims.Clone(), type, bytes, writeData);
        _tensors.Add(t);
        return t;
    }

    long Align(long n) => (n + Alignment - 1) / Alignment * Alignment;

    public GgufLayout Layout()
    {
        var header = new MemoryStream();
        WriteHeader(header);
        header.SetLength(Align(header.Length));
        var offsets = new long[_tensors.Count];
        long offset = header.Length;
        for (int i = 0; i < _tensors.Count; i++)
        {
            offsets[i] = offset;
            offset += Align(_tensors[i].ByteSize);
        }
        return new GgufLayout(header.ToArray(), offsets, offset);
    }

    public void Write(Stream output)
    {
        if (_tensors.FirstOrDefault(t => t.WriteData is null) is { } noData)
            throw new InvalidOperationException($"tensor '{noData.Name}' has no data writer (write it at its Layout offset instead)");
        var counted = new CountingStream(output);
        WriteHeader(counted);
        Pad(counted);
        foreach (var t in _tensors)
        {
            long start = counted.Count;
            t.WriteData!(counted);
            long written = counted.Count - start;
            if (written != t.ByteSize)
                throw new InvalidOperationException($"tensor '{t.Name}': wrote {written} bytes, expected {t.ByteSize}");
            Pad(counted);
        }
        counted.Flush();
    }

    void Pad(CountingStream s)
    {
        long padding = Align(s.Count) - s.Count;
        if (padding > 0) s.Write(new byte[padding]);
    }

    void WriteHeader(Stream s)
    {
        using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
        w.Write(Encoding.ASCII.GetBytes("GGUF"));
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)value.Type);
            if (value.Type == GgufValueType.Array)
            {
                var items = (Array)value.Value;
                w.Write((uint)value.ElementType);
                w.Write((ulong)items.Length);
                foreach (var item in items) WriteScalar(w, value.ElementType, item!);
            }
            else WriteScalar(w, value.Type, value.Value);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Dims.Length);
            foreach (var d in t.Dims) w.Write((ulong)d);
            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset += Align(t.ByteSize);
        }
        w.Flush();
    }

    static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    static void WriteScalar(BinaryWriter w, GgufValueType type, object v)
    {
        switch (type)
        {
            case GgufValueType.UInt8: w.Write((byte)v); break;
            case GgufValueType.Int8: w.Write((sbyte)v); break;
            case GgufValueType.UInt16: w.Write((ushort)v); break;
            case GgufValueType.Int16: w.Write((short)v); break;
            case GgufValueType.UInt32: w.Write((uint)v); break;
            case GgufValueType.Int32: w.Write((int)v); break;
            case GgufValueType.Float32: w.Write((float)v); break;
            case GgufValueType.Bool: w.Write((bool)v ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(w, (string)v); break;
            case GgufValueType.UInt64: w.Write((ulong)v); break;
            case GgufValueType.Int64: w.Write((long)v); break;
            case GgufValueType.Float64: w.Write((double)v); break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    /// <summary>Passes writes through and counts them (the writer needs positions on non-seekable streams).</summary>
    sealed class CountingStream : Stream
    {
        readonly Stream _inner;
        public long Count { get; private set; }
        public CountingStream(Stream inner) => _inner = inner;
        public override void Write(byte[] buffer, int offset, int count) { _inner.Write(buffer, offset, count); Count += count; }
        public override void Write(ReadOnlySpan<byte> buffer) { _inner.Write(buffer); Count += buffer.Length; }
        public override void WriteByte(byte value) { _inner.WriteByte(value); Count++; }
        public override void Flush() => _inner.Flush();
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Count;
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
