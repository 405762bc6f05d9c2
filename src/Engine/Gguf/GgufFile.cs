using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using Engine.Gguf.Quantization;

namespace Engine.Gguf;

/// <summary>
/// A GGUF file (v2/v3, little-endian), memory-mapped. The whole header is validated before anything is
/// returned: every count, length and dimension is checked against the bytes that remain, so a hostile file
/// fails with an <see cref="EngineException"/> naming the problem, never with a large allocation or a read
/// out of range. Tensor data must lie inside the file, aligned, and tensors may not overlap.
/// </summary>
public sealed unsafe partial class GgufFile : IDisposable
{
    public const uint DefaultAlignment = 32;
    /// <summary>GGML_MAX_DIMS.</summary>
    public const int MaxDims = 4;
    /// <summary>GGML_MAX_NAME includes the terminating NUL.</summary>
    public const int MaxTensorName = 63;

    public string Source { get; }
    public uint Version { get; private set; }
    public uint Alignment { get; private set; } = DefaultAlignment;
    /// <summary>File offset of the data section.</summary>
    public long DataOffset { get; private set; }
    public long Length { get; }
    public IReadOnlyList<KeyValuePair<string, GgufValue>> MetadataInOrder => _metadataOrder;
    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;
    public IReadOnlyList<GgufTensorInfo> Tensors => _tensors;

    readonly List<KeyValuePair<string, GgufValue>> _metadataOrder = new();
    readonly Dictionary<string, GgufValue> _metadata = new(StringComparer.Ordinal);
    readonly List<GgufTensorInfo> _tensors = new();
    readonly Dictionary<string, GgufTensorInfo> _byName = new(StringComparer.Ordinal);

    readonly byte* _base;
    readonly MemoryMappedFile? _map;
    readonly MemoryMappedViewAccessor? _view;
    GCHandle _pin;
    bool _disposed;

    GgufFile(string source, byte* basePtr, long length, MemoryMappedFile? map, MemoryMappedViewAccessor? view, GCHandle pin)
    {
        Source = source; _base = basePtr; Length = length; _map = map; _view = view; _pin = pin;
    }

    /// <summary>Opens and validates a GGUF file.</summary>
    public static GgufFile Open(string path)
    {
        if (!File.Exists(path)) throw new EngineException($"{path}: file not found");
        long length = new FileInfo(path).Length;
        if (length < 24) throw new EngineException($"{path}: not a GGUF file (only {length} bytes; the header alone needs 24)");
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        try
        {
            view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            var file = new GgufFile(path, p + view.PointerOffset, length, map, view, default);
            try { file.Parse(); }
            catch { file.Dispose(); throw; }
            return file;
        }
        catch when (view is null)
        {
            map.Dispose();
            throw;
        }
    }

    /// <summary>Parses a GGUF image held in memory (tests, fuzzing). The array is pinned until disposal.</summary>
    public static GgufFile FromBytes(byte[] data, string source = "<memory>")
    {
        var pin = GCHandle.Alloc(data, GCHandleType.Pinned);
        var file = new GgufFile(source, (byte*)pin.AddrOfPinnedObject(), data.Length, null, null, pin);
        try { file.Parse(); }
        catch { file.Dispose(); throw; }
        return file;
    }

    public bool TryGetTensor(string name, out GgufTensorInfo info) => _byName.TryGetValue(name, out info!);

    public GgufTensorInfo Tensor(string name) =>
        _byName.TryGetValue(name, out var t) ? t : throw new EngineException($"{Source}: no tensor named '{name}'");

    /// <summary>The stored bytes of a tensor (a view into the mapping; valid until disposal).</summary>
    public ReadOnlySpan<byte> RawBytes(GgufTensorInfo t)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (t.ByteSize > int.MaxValue) throw new EngineException($"{Source}: tensor '{t.Name}' is too large for a single span ({t.ByteSize} bytes)");
        return new ReadOnlySpan<byte>(_base + DataOffset + t.Offset, (int)t.ByteSize);
    }

    /// <summary>Decodes a tensor into <paramref name="destination"/> (ElementCount floats), in parallel.</summary>
    public void DecodeInto(GgufTensorInfo t, float* destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        GgmlCodec.DecodeRows(t.Type, _base + DataOffset + t.Offset, destination, t.Rows, t.RowLength);
    }

    public float[] DecodeToArray(GgufTensorInfo t)
    {
        if (t.ElementCount > Array.MaxLength) throw new EngineException($"{Source}: tensor '{t.Name}' is too large for an array");
        var result = new float[t.ElementCount];
        fixed (float* p = result) DecodeInto(t, p);
        return result;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
        if (_pin.IsAllocated) _pin.Free();
    }

    // ---- parsing ----

    void Parse()
    {
        var r = new Reader(_base, Length, Source);
        uint magic = r.U32("magic");
        if (magic != 0x46554747) // "GGUF" little-endian
            throw new EngineException($"{Source}: not a GGUF file (magic bytes {magic:X8}, expected 'GGUF')");
        Version = r.U32("version");
        if (Version is not (2 or 3))
            throw new EngineException($"{Source}: unsupported GGUF version {Version}" + (Version > 0xFFFF ? " (a big-endian file?)" : " (supported: 2, 3)"));
        ulong tensorCount = r.U64("tensor count");
        ulong kvCount = r.U64("metadata count");
        // Each metadata entry takes at least 13 bytes (key length, type, 1-byte value); each tensor info at least 24.
        if (kvCount > (ulong)r.Remaining / 13)
            throw new EngineException($"{Source}: metadata count {kvCount} cannot fit in the {r.Remaining} bytes that follow");
        if (tensorCount > (ulong)r.Remaining / 24)
            throw new EngineException($"{Source}: tensor count {tensorCount} cannot fit in the {r.Remaining} bytes that follow");

        for (ulong i = 0; i < kvCount; i++)
        {
            string key = r.String($"metadata key #{i}");
            if (key.Length == 0) throw r.Error($"metadata key #{i} is empty");
            var type = r.ValueType($"metadata '{key}' type");
            var value = ReadValue(ref r, type, key);
            if (!_metadata.TryAdd(key, value)) throw r.Error($"metadata key '{key}' appears twice");
            _metadataOrder.Add(new(key, value));
        }
        if (_metadata.TryGetValue(GgufKeys.Alignment.Name(), out var align))
        {
            if (align.Type != GgufValueType.UInt32) throw new EngineException($"{Source}: {GgufKeys.Alignment} must be a uint32 (got {align.Type})");
            uint a = (uint)align.Value;
            if (a == 0 || (a & (a - 1)) != 0) throw new EngineException($"{Source}: {GgufKeys.Alignment} {a} is not a power of two");
            Alignment = a;
        }

        for (ulong i = 0; i < tensorCount; i++) ReadTensorInfo(ref r, i);

        long headerEnd = r.Position;
        long dataOffset = (headerEnd + Alignment - 1) / Alignment * Alignment;
        if (dataOffset > Length && _tensors.Count > 0)
            throw new EngineException($"{Source}: truncated: the data section would start at byte {dataOffset} but the file has {Length} bytes");
        DataOffset = Math.Min(dataOffset, Length);
        long dataLength = Length - DataOffset;
        foreach (var t in _tensors)
        {
            if (t.Offset > dataLength || t.ByteSize > dataLength - t.Offset)
                throw new EngineException($"{Source}: tensor '{t.Name}' ({t.ByteSize} bytes at data offset {t.Offset}) runs past the end of the file ({dataLength} data bytes; truncated?)");
        }
        GgufTensorInfo? previous = null;
        foreach (var t in _tensors.Where(t => t.ByteSize > 0).OrderBy(t => t.Offset))
        {
            if (previous != null && t.Offset < previous.Offset + previous.ByteSize)
                throw new EngineException($"{Source}: tensors '{previous.Name}' and '{t.Name}' overlap (data offsets {previous.Offset}+{previous.ByteSize} and {t.Offset})");
            previous = t;
        }
    }

    void ReadTensorInfo(ref Reader r, ulong index)
    {
        string name = r.String($"tensor #{index} name");
        string where = $"tensor '{name}'";
        if (name.Length == 0) throw r.Error($"tensor #{index} has an empty name");
        if (Encoding.UTF8.GetByteCount(name) > MaxTensorName) throw r.Error($"{where}: name longer than {MaxTensorName} bytes");
        uint nDims = r.U32($"{where} dimension count");
        if (nDims == 0 || nDims > MaxDims) throw r.Error($"{where}: {nDims} dimensions (supported: 1 to {MaxDims})");
        var dims = new long[nDims];
        long elements = 1;
        for (int d = 0; d < nDims; d++)
        {
            ulong dim = r.U64($"{where} dimension {d}");
            if (dim > long.MaxValue) throw r.Error($"{where}: dimension {d} is {dim}");
            dims[d] = (long)dim;
            if (!TryMultiply(elements, (long)dim, out elements)) throw r.Error($"{where}: element count overflows");
        }
        uint rawType = r.U32($"{where} type");
        if (!GgmlTypes.IsKnown(rawType))
            throw r.Error($"{where}: unsupported ggml type {rawType} (supported: {string.Join(", ", Enum.GetValues<GgmlType>().Select(t => $"{GgmlTypes.Name(t)} ({(uint)t})"))})");
        var type = (GgmlType)rawType;
        if (dims[0] % GgmlTypes.BlockSize(type) != 0)
            throw r.Error($"{where}: row length {dims[0]} is not a multiple of the {GgmlTypes.Name(type)} block size {GgmlTypes.BlockSize(type)}");
        ulong offset = r.U64($"{where} offset");
        if (offset % Alignment != 0) throw r.Error($"{where}: data offset {offset} is not a multiple of the alignment {Alignment}");
        if (offset > long.MaxValue) throw r.Error($"{where}: data offset {offset} is out of range");
        long bytes = dims[0] / GgmlTypes.BlockSize(type) * GgmlTypes.BlockBytes(type);
        for (int d = 1; d < nDims; d++)
            if (!TryMultiply(bytes, dims[d], out bytes)) throw r.Error($"{where}: byte size overflows");
        var info = new GgufTensorInfo(name, dims, type, (long)offset, bytes);
        if (!_byName.TryAdd(name, info)) throw r.Error($"tensor '{name}' appears twice");
        _tensors.Add(info);
    }

    static bool TryMultiply(long a, long b, out long product)
    {
        try { product = checked(a * b); return true; }
        catch (OverflowException) { product = 0; return false; }
    }

    GgufValue ReadValue(ref Reader r, GgufValueType type, string key)
    {
        if (type != GgufValueType.Array) return GgufValue.Scalar(type, ReadScalar(ref r, type, key));
        var elementType = r.ValueType($"metadata '{key}' array element type");
        if (elementType == GgufValueType.Array) throw r.Error($"metadata '{key}': arrays of arrays are not supported");
        ulong count = r.U64($"metadata '{key}' array length");
        if (count > (ulong)(r.Remaining / GgufValue.EncodedSize(elementType)))
            throw r.Error($"metadata '{key}': array length {count} cannot fit in the {r.Remaining} bytes that remain");
        int n = (int)count;
        System.Array items = elementType switch
        {
            GgufValueType.String => ReadStrings(ref r, n, key),
            GgufValueType.UInt8 => r.Bytes(n, key).ToArray(),
            GgufValueType.Int8 => MemoryMarshal.Cast<byte, sbyte>(r.Bytes(n, key)).ToArray(),
            GgufValueType.Bool => ReadBools(ref r, n, key),
            GgufValueType.UInt16 => MemoryMarshal.Cast<byte, ushort>(r.Bytes(checked(n * 2), key)).ToArray(),
            GgufValueType.Int16 => MemoryMarshal.Cast<byte, short>(r.Bytes(checked(n * 2), key)).ToArray(),
            GgufValueType.UInt32 => MemoryMarshal.Cast<byte, uint>(r.Bytes(checked(n * 4), key)).ToArray(),
            GgufValueType.Int32 => MemoryMarshal.Cast<byte, int>(r.Bytes(checked(n * 4), key)).ToArray(),
            GgufValueType.Float32 => MemoryMarshal.Cast<byte, float>(r.Bytes(checked(n * 4), key)).ToArray(),
            GgufValueType.UInt64 => MemoryMarshal.Cast<byte, ulong>(r.Bytes(checked(n * 8), key)).ToArray(),
            GgufValueType.Int64 => MemoryMarshal.Cast<byte, long>(r.Bytes(checked(n * 8), key)).ToArray(),
            GgufValueType.Float64 => MemoryMarshal.Cast<byte, double>(r.Bytes(checked(n * 8), key)).ToArray(),
            _ => throw r.Error($"metadata '{key}': unknown array element type {(uint)elementType}"),
        };
        return GgufValue.Array(elementType, items);
    }

    static string[] ReadStrings(ref Reader r, int n, string key)
    {
        var a = new string[n];
        for (int i = 0; i < n; i++) a[i] = r.String($"metadata '{key}'", i);
        return a;
    }

    static bool[] ReadBools(ref Reader r, int n, string key)
    {
        var a = new bool[n];
        for (int i = 0; i < n; i++) a[i] = r.Bool($"metadata '{key}'", i);
        return a;
    }

    static object ReadScalar(ref Reader r, GgufValueType type, string key) => type switch
    {
        GgufValueType.UInt8 => r.Bytes(1, key)[0],
        GgufValueType.Int8 => (sbyte)r.Bytes(1, key)[0],
        GgufValueType.UInt16 => MemoryMarshal.Read<ushort>(r.Bytes(2, key)),
        GgufValueType.Int16 => MemoryMarshal.Read<short>(r.Bytes(2, key)),
        GgufValueType.UInt32 => r.U32(key),
        GgufValueType.Int32 => (int)r.U32(key),
        GgufValueType.Float32 => BitConverter.Int32BitsToSingle((int)r.U32(key)),
        GgufValueType.Bool => r.Bool(key),
        GgufValueType.String => r.String($"metadata '{key}'"),
        GgufValueType.UInt64 => r.U64(key),
        GgufValueType.Int64 => (long)r.U64(key),
        GgufValueType.Float64 => BitConverter.Int64BitsToDouble((long)r.U64(key)),
        _ => throw r.Error($"metadata '{key}': unknown value type {(uint)type}"),
    };

    /// <summary>A bounds-checked little-endian cursor over the mapped bytes.</summary>
    ref struct Reader
    {
        static readonly UTF8Encoding StrictUtf8 = new(false, true);
        readonly byte* _p;
        readonly long _length;
        readonly string _source;
        public long Position;

        public Reader(byte* p, long length, string source) { _p = p; _length = length; _source = source; Position = 0; }

        public readonly long Remaining => _length - Position;

        public readonly EngineException Error(string message) => new($"{_source}: {message} (at byte {Position})");

        static string Name(string what, int index) => index >= 0 ? $"{what}[{index}]" : what;

        ReadOnlySpan<byte> Take(long n, string what, int index = -1)
        {
            if (n < 0 || n > Remaining)
                throw Error($"truncated: {Name(what, index)} needs {n} bytes but only {Remaining} remain");
            var span = new ReadOnlySpan<byte>(_p + Position, (int)n);
            Position += n;
            return span;
        }

        public ReadOnlySpan<byte> Bytes(int n, string what) => Take(n, what);
        public uint U32(string what) => MemoryMarshal.Read<uint>(Take(4, what));
        public ulong U64(string what) => MemoryMarshal.Read<ulong>(Take(8, what));

        public bool Bool(string what, int index = -1)
        {
            byte b = Take(1, what, index)[0];
            if (b > 1) throw Error($"{Name(what, index)}: boolean byte {b} is neither 0 nor 1");
            return b == 1;
        }

        public GgufValueType ValueType(string what)
        {
            uint t = U32(what);
            if (t > (uint)GgufValueType.Float64) throw Error($"{what}: unknown value type {t}");
            return (GgufValueType)t;
        }

        public string String(string what, int index = -1)
        {
            ulong len = MemoryMarshal.Read<ulong>(Take(8, what, index));
            if (len > (ulong)Remaining || len > int.MaxValue)
                throw Error($"{Name(what, index)}: string length {len} runs past the end of the file ({Remaining} bytes remain)");
            var bytes = Take((long)len, what, index);
            try { return StrictUtf8.GetString(bytes); }
            catch (DecoderFallbackException) { throw Error($"{Name(what, index)}: not valid UTF-8"); }
        }
    }
}
