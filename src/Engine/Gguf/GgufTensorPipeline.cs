using System.Buffers;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Engine.Gguf.Quantization;
using Engine.Models;
using Engine.Util;
using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace Engine.Gguf;

/// <summary>Time spent in each stage of writing the tensors, summed over the workers (they overlap in wall time).</summary>
public sealed record GgufExportTimings(TimeSpan Read, TimeSpan Encode, TimeSpan Write, TimeSpan Flush, int Workers)
{
    public static readonly GgufExportTimings None = new(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, 0);
}

/// <summary>One tensor to write: its rows (as llama.cpp lays them out), the type to encode them in, and where it goes.</summary>
internal sealed record TensorJob(string Name, GgmlType Type, long Rows, long RowLength, long FileOffset, TensorRows Source)
{
    public long RowBytes { get; } = GgmlTypes.RowBytes(Type, RowLength);
}

/// <summary>
/// Writes tensors into their places in the output file. The work is cut into chunks of rows across all tensors,
/// taken in file order by one worker per core (no more: the conversion and the kernel's copy into the page cache
/// are both CPU work); each worker reads its rows straight from the memory-mapped source, encodes them into its
/// pooled buffer and writes them at their offset, so reading, encoding and writing overlap across workers, and
/// a model is never copied whole.
/// </summary>
internal static unsafe class GgufTensorPipeline
{
    /// <summary>Elements per chunk: a chunk's input (1 MiB of f32) and output stay in the core's cache.</summary>
    public const long DefaultChunkElements = 1 << 18;

    readonly record struct Chunk(int JobIndex, long FirstRow, long RowCount);

    public static GgufExportTimings Run(SafeFileHandle file, IReadOnlyList<TensorJob> jobs, int maxWorkers, long chunkElements = DefaultChunkElements)
    {
        var chunks = new List<Chunk>();
        // Chunks not yet written, per tensor: the last one to finish frees the tensor's rows.
        var remaining = new int[jobs.Count];
        for (int j = 0; j < jobs.Count; j++)
        {
            var job = jobs[j];
            long perChunk = Math.Max(1, chunkElements / Math.Max(1, job.RowLength));
            for (long first = 0; first < job.Rows; first += perChunk, remaining[j]++) chunks.Add(new Chunk(j, first, Math.Min(perChunk, job.Rows - first)));
            if (remaining[j] == 0) job.Source.Dispose();
        }
        if (chunks.Count == 0) return GgufExportTimings.None;
        long bufferBytes = chunks.Max(c => c.RowCount * jobs[c.JobIndex].RowBytes);
        long scratchFloats = jobs.Max(j => j.RowLength);
        int workers = Math.Clamp(maxWorkers, 1, chunks.Count);

        int next = -1;
        var failure = (ExceptionDispatchInfo?)null;
        long read = 0, encode = 0, write = 0;
        void Work()
        {
            long myRead = 0, myEncode = 0, myWrite = 0;
            byte[] buffer = ArrayPool<byte>.Shared.Rent(checked((int)bufferBytes));
            float[] scratch = ArrayPool<float>.Shared.Rent(checked((int)scratchFloats));
            try
            {
                fixed (byte* output = buffer)
                fixed (float* rowScratch = scratch)
                {
                    int i;
                    while (Volatile.Read(ref failure) is null && (i = Interlocked.Increment(ref next)) < chunks.Count)
                    {
                        var (jobIndex, first, count) = chunks[i];
                        var job = jobs[jobIndex];
                        long bytes = count * job.RowBytes;
                        long t0 = Stopwatch.GetTimestamp();
                        byte* data = job.Type == GgmlType.F32 ? job.Source.StoredF32Rows(first, count) : null;
                        if (data is null)
                        {
                            data = output;
                            for (long r = 0; r < count; r++)
                            {
                                long before = Stopwatch.GetTimestamp();
                                float* row = job.Source.Row(first + r, rowScratch);
                                long after = Stopwatch.GetTimestamp();
                                myRead += after - before;
                                GgmlCodec.Encode(job.Type, new ReadOnlySpan<float>(row, checked((int)job.RowLength)),
                                    new Span<byte>(output + r * job.RowBytes, checked((int)job.RowBytes)));
                                myEncode += Stopwatch.GetTimestamp() - after;
                            }
                        }
                        long t1 = Stopwatch.GetTimestamp();
                        RandomAccess.Write(file, new ReadOnlySpan<byte>(data, checked((int)bytes)), job.FileOffset + first * job.RowBytes);
                        myWrite += Stopwatch.GetTimestamp() - t1;
                        if (data != output) myEncode += t1 - t0;
                        if (Interlocked.Decrement(ref remaining[jobIndex]) == 0) job.Source.Dispose();
                    }
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, ExceptionDispatchInfo.Capture(e), null);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
                ArrayPool<float>.Shared.Return(scratch);
                Interlocked.Add(ref read, myRead);
                Interlocked.Add(ref encode, myEncode);
                Interlocked.Add(ref write, myWrite);
            }
        }

        var started = new List<Thread>();
        try
        {
            for (int w = 1; w < workers; w++)
            {
                var thread = new Thread(Work) { IsBackground = true, Name = $"gguf-export-{w}" };
                thread.Start();
                started.Add(thread);
            }
            Work();
        }
        finally
        {
            foreach (var t in started) t.Join();
            // After a failure, free what the workers left (Dispose is idempotent).
            for (int j = 0; j < jobs.Count; j++) if (remaining[j] > 0) jobs[j].Source.Dispose();
        }
        failure?.Throw();
        return new GgufExportTimings(Stopwatch.GetElapsedTime(0, read), Stopwatch.GetElapsedTime(0, encode), Stopwatch.GetElapsedTime(0, write), TimeSpan.Zero, workers);
    }
}

/// <summary>A tensor's rows as float32, in llama.cpp's row order (q/k permuted for its RoPE).</summary>
internal abstract unsafe class TensorRows : IDisposable
{
    /// <summary>Row <paramref name="row"/>: a pointer into the source, or into <paramref name="scratch"/> (RowLength floats) when it had to be converted.</summary>
    public abstract float* Row(long row, float* scratch);

    /// <summary>The stored bytes of rows [first, first + count) when they are already the F32 output (stored F32, not permuted); else null.</summary>
    public virtual byte* StoredF32Rows(long first, long count) => null;

    public virtual void Dispose() { }

    /// <summary>
    /// The rows of <paramref name="hfName"/>: read in place from a memory-mapped F32/F16/BF16 safetensors tensor, or
    /// else read whole through the weight source (other dtypes, GGUF sources) when a worker first needs it.
    /// </summary>
    public static TensorRows For(IWeightSource weights, string hfName, int? ropeHeads, long rowLength)
    {
        if (weights is SafetensorsWeightSource safetensors)
        {
            var mapped = safetensors.Map(hfName);
            if (mapped.Entry.Dtype is "F32" or "F16" or "BF16" && (ropeHeads is null || mapped.Entry.Shape.Length == 2))
                return new MappedRows(mapped, rowLength, ropeHeads);
        }
        return new MaterializedRows(weights, hfName, ropeHeads);
    }
}

/// <summary>Rows read where they lie in a memory-mapped safetensors file; F16/BF16 rows are widened exactly into scratch.</summary>
internal sealed unsafe class MappedRows : TensorRows
{
    readonly byte* _data;
    readonly string _dtype;
    readonly long _rows, _rowLength;
    readonly int _elementSize;
    readonly int? _heads;

    public MappedRows(MappedTensor tensor, long rowLength, int? ropeHeads)
    {
        _data = tensor.Data;
        _dtype = tensor.Entry.Dtype;
        _elementSize = SafetensorsFile.DtypeSizes[_dtype];
        _rowLength = rowLength;
        _rows = tensor.Entry.ByteLength / _elementSize / Math.Max(1, rowLength);
        _heads = ropeHeads;
        if (ropeHeads is int heads) RopePermutation.CheckPermutable(_rows, rowLength, heads);
    }

    public override float* Row(long row, float* scratch)
    {
        long source = _heads is int heads ? RopePermutation.InterleavedSourceRow(row, _rows, heads) : row;
        byte* p = _data + source * _rowLength * _elementSize;
        int n = checked((int)_rowLength);
        switch (_dtype)
        {
            case "F32": return (float*)p;
            case "F16": FloatCodecs.FromHalf(new ReadOnlySpan<ushort>(p, n), new Span<float>(scratch, n)); return scratch;
            default: FloatCodecs.FromBFloat16(new ReadOnlySpan<ushort>(p, n), new Span<float>(scratch, n)); return scratch;
        }
    }

    public override byte* StoredF32Rows(long first, long count) =>
        _dtype == "F32" && _heads is null ? _data + first * _rowLength * 4 : null;
}

/// <summary>
/// A tensor read whole through its weight source (converted to float32, q/k permuted), or computed, by the first
/// worker that needs it, and freed after its last chunk: as much memory as one tensor, as before, for sources that
/// cannot be mapped and for tensors the export changes (Gemma's shifted norms, llama3's rope_freqs).
/// </summary>
internal sealed unsafe class MaterializedRows : TensorRows
{
    readonly object _gate = new();
    readonly Func<Tensor> _produce;
    Tensor? _values;
    volatile float* _data;
    long _rowLength;
    bool _disposed;

    public MaterializedRows(IWeightSource weights, string hfName, int? ropeHeads) : this(() => ReadFloat32(weights, hfName, ropeHeads)) { }

    /// <param name="produce">the tensor's float32 values, a new tensor the rows take ownership of</param>
    public MaterializedRows(Func<Tensor> produce) => _produce = produce;

    /// <summary>A tensor of the source as float32, its q/k rows interleaved for <paramref name="ropeHeads"/> heads.</summary>
    public static Tensor ReadFloat32(IWeightSource weights, string hfName, int? ropeHeads)
    {
        using var scope = NewDisposeScope();
        var tensor = weights.Read(hfName);
        var values = tensor.dtype == ScalarType.Float32 ? tensor.contiguous() : tensor.to(ScalarType.Float32).contiguous();
        if (ropeHeads is int heads) values = RopePermutation.ToInterleaved(values, heads);
        return values.MoveToOuterDisposeScope();
    }

    public override float* Row(long row, float* scratch)
    {
        if (_data == null)
            lock (_gate)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_data == null) Load();
            }
        return _data + row * _rowLength;
    }

    void Load()
    {
        using var scope = NewDisposeScope();
        _values = _produce().to(ScalarType.Float32).contiguous().MoveToOuterDisposeScope();
        _rowLength = _values.dim() == 0 ? 1 : _values.shape[^1];
        _data = (float*)TensorMemory.DataPointer(_values);
    }

    public override void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _data = null;
            _values?.Dispose();
            _values = null;
        }
    }
}
