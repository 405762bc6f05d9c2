using System.IO.MemoryMappedFiles;
using System.Text.Json;
using TorchSharp;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Models;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafetensorsEntry(string Name, string Dtype, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>A tensor's bytes inside a memory-mapped safetensors file (null data when it has none).</summary>
public readonly unsafe struct MappedTensor(SafetensorsEntry entry, byte* data)
{
    public SafetensorsEntry Entry { get; } = entry;
    public byte* Data { get; } = data;
}

/// <summary>
/// A memory-mapped safetensors file. The header is validated in full before any tensor is read: sizes,
/// dtypes, shapes against byte lengths, offsets in range and not overlapping.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Headers beyond this are rejected before being read (real ones are kilobytes).</summary>
    const long MaxHeaderBytes = 100L << 20;

    public static readonly IReadOnlyDictionary<string, int> DtypeSizes = new Dictionary<string, int>
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["BF16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    public string Path { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    readonly MemoryMappedFile? _map;
    readonly MemoryMappedViewAccessor? _view;
    /// <summary>First byte of the data section in the mapping (acquired once, released on disposal).</summary>
    readonly byte* _data;
    bool _disposed;

    SafetensorsFile(string path, Dictionary<string, SafetensorsEntry> entries, Dictionary<string, string> metadata,
        MemoryMappedFile? map, MemoryMappedViewAccessor? view, long dataStart)
    {
        Path = path; Entries = entries; Metadata = metadata; _map = map; _view = view;
        if (view is not null)
        {
            byte* basePtr = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
            _data = basePtr + view.PointerOffset + dataStart;
        }
    }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new EngineException($"{path}: weights file not found");
        long fileLength = new FileInfo(path).Length;
        if (fileLength < 8) throw new EngineException($"{path}: truncated safetensors file ({fileLength} bytes, need at least 8)");
        byte[] headerBytes;
        using (var fs = File.OpenRead(path))
        {
            Span<byte> lenBytes = stackalloc byte[8];
            fs.ReadExactly(lenBytes);
            ulong headerLen = BitConverter.ToUInt64(lenBytes);
            if (headerLen > (ulong)(fileLength - 8))
                throw new EngineException($"{path}: header length {headerLen} runs past the end of the file ({fileLength} bytes)");
            if (headerLen > MaxHeaderBytes) throw new EngineException($"{path}: header length {headerLen} exceeds the {MaxHeaderBytes}-byte limit");
            headerBytes = new byte[headerLen];
            fs.ReadExactly(headerBytes);
        }
        long dataStart = 8 + headerBytes.Length;
        long dataLength = fileLength - dataStart;
        var (entries, metadata) = ParseHeader(path, headerBytes, dataLength);

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        if (fileLength > 0 && dataLength > 0)
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            try { view = map.CreateViewAccessor(0, fileLength, MemoryMappedFileAccess.Read); }
            catch { map.Dispose(); throw; }
        }
        return new SafetensorsFile(path, entries, metadata, map, view, dataStart);
    }

    static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw new EngineException($"{path}: header is not valid JSON ({e.Message})"); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new EngineException($"{path}: header must be a JSON object");
            var entries = new Dictionary<string, SafetensorsEntry>();
            var metadata = new Dictionary<string, string>();
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in prop.Value.EnumerateObject())
                            if (m.Value.ValueKind == JsonValueKind.String) metadata[m.Name] = m.Value.GetString()!;
                    continue;
                }
                entries[prop.Name] = ParseEntry(path, prop.Name, prop.Value, dataLength);
            }
            // Overlap check on sorted ranges; zero-length tensors occupy nothing.
            SafetensorsEntry? previous = null;
            foreach (var e in entries.Values.Where(e => e.ByteLength > 0).OrderBy(e => e.Begin))
            {
                if (previous != null && e.Begin < previous.End)
                    throw new EngineException($"{path}: tensors '{previous.Name}' and '{e.Name}' overlap (bytes {previous.Begin}-{previous.End} and {e.Begin}-{e.End})");
                previous = e;
            }
            return (entries, metadata);
        }
    }

    static SafetensorsEntry ParseEntry(string path, string name, JsonElement value, long dataLength)
    {
        string where = $"{path}: tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object) throw new EngineException($"{where}: entry must be an object");
        if (!value.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String)
            throw new EngineException($"{where}: missing dtype");
        string dtype = dtypeEl.GetString()!;
        if (!DtypeSizes.TryGetValue(dtype, out int elementSize)) throw new EngineException($"{where}: unknown dtype '{dtype}'");
        if (!value.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array)
            throw new EngineException($"{where}: missing shape");
        var shape = new List<long>();
        long count = 1;
        foreach (var d in shapeEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
                throw new EngineException($"{where}: shape entries must be non-negative integers");
            shape.Add(dim);
            try { count = checked(count * dim); }
            catch (OverflowException) { throw new EngineException($"{where}: shape overflows"); }
        }
        if (!value.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array || offEl.GetArrayLength() != 2)
            throw new EngineException($"{where}: data_offsets must be [begin, end]");
        if (!offEl[0].TryGetInt64(out long begin) || !offEl[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new EngineException($"{where}: invalid data_offsets [{offEl[0]}, {offEl[1]}]");
        if (end > dataLength)
            throw new EngineException($"{where}: data_offsets [{begin}, {end}] run past the end of the data ({dataLength} bytes; truncated file?)");
        long expected;
        try { expected = checked(count * elementSize); }
        catch (OverflowException) { throw new EngineException($"{where}: shape overflows"); }
        if (expected != end - begin)
            throw new EngineException($"{where}: shape [{string.Join(", ", shape)}] × {dtype} needs {expected} bytes but data_offsets span {end - begin}");
        return new SafetensorsEntry(name, dtype, shape.ToArray(), begin, end);
    }

    public static ScalarType TorchType(string dtype) => dtype switch
    {
        "F32" => ScalarType.Float32, "F16" => ScalarType.Float16, "BF16" => ScalarType.BFloat16, "F64" => ScalarType.Float64,
        "I64" => ScalarType.Int64, "I32" => ScalarType.Int32, "I16" => ScalarType.Int16, "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte, "BOOL" => ScalarType.Bool,
        _ => throw new EngineException($"unknown safetensors dtype '{dtype}'"),
    };

    public static string SafetensorsType(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32", ScalarType.Float16 => "F16", ScalarType.BFloat16 => "BF16", ScalarType.Float64 => "F64",
        ScalarType.Int64 => "I64", ScalarType.Int32 => "I32", ScalarType.Int16 => "I16", ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8", ScalarType.Bool => "BOOL",
        _ => throw new ArgumentException($"no safetensors dtype for {t}"),
    };

    /// <summary>
    /// Reads one tensor into a new CPU tensor of its stored dtype. The only copy made is the tensor itself.
    /// </summary>
    public Tensor Read(string name)
    {
        var mapped = Map(name);
        var t = torch.empty(mapped.Entry.Shape, TorchType(mapped.Entry.Dtype));
        if (mapped.Entry.ByteLength > 0) TensorMemory.CopyFrom(t, mapped.Data, mapped.Entry.ByteLength);
        return t;
    }

    /// <summary>
    /// A tensor's stored bytes where they lie in the mapping, with no copy: valid until this file is disposed.
    /// The data may be unaligned (safetensors pads only its header).
    /// </summary>
    public MappedTensor Map(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var e = Entries.TryGetValue(name, out var found) ? found : throw new EngineException($"{Path}: no tensor named '{name}'");
        return new MappedTensor(e, e.ByteLength == 0 ? null : _data + e.Begin);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_data != null) _view!.SafeMemoryMappedViewHandle.ReleasePointer();
        _view?.Dispose();
        _map?.Dispose();
    }
}
