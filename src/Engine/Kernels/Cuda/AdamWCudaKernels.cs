using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels.Cuda;

/// <summary>
/// Launches the multi-tensor AdamW of native/cuda/adamw.cu on CUDA tensors; chosen by <see cref="Training.AdamW"/>
/// when its parameters, gradients and state are on a CUDA device. The tensor list goes to the device as an array of
/// AdamWTensorDesc (the layout of <see cref="NativeKernels.AdamWTensor"/>) with first_chunk[i], the global index of
/// tensor i's first chunk of 8192 elements; every launch has one block per chunk, so one launch covers all tensors.
/// The list is uploaded when it changes (in a training loop: once). The clipping norm is read back to the host (it is
/// returned, and a data-parallel run agrees on it across ranks); the update itself is enqueued on torch's stream
/// without a wait.
/// </summary>
internal static class AdamWCudaKernels
{
    public const uint Threads = 256;  // ADAMW_THREADS in adamw.cu
    public const long Chunk = 8192;   // ADAMW_CHUNK

    sealed record Functions(IntPtr Context, IntPtr SumSquares, IntPtr ClipScale, IntPtr Step);

    static readonly ConcurrentDictionary<int, Functions> Devices = new();

    internal static void ForgetDevices()
    {
        Devices.Clear();
        lock (TableLock)
        {
            lastTable?.Table.Dispose();
            lastTable = null;
        }
    }

    static Functions For(int deviceIndex)
    {
        if (!CudaDriver.IsAvailable) throw LayerCudaKernels.Unavailable();
        return Devices.GetOrAdd(deviceIndex < 0 ? 0 : deviceIndex, i =>
        {
            IntPtr context = CudaDriver.PrimaryContext(i);
            var (major, minor) = CudaDriver.ComputeCapability(i);
            using var scope = CudaDriver.Enter(context);
            IntPtr module = CudaDriver.LoadModule(KernelCompiler.ImageForDevice(KernelSources.AdamW, major, minor));
            return new Functions(context, CudaDriver.GetFunction(module, "adamw_grad_sum_squares"),
                CudaDriver.GetFunction(module, "adamw_clip_scale"), CudaDriver.GetFunction(module, "adamw_step"));
        });
    }

    /// <summary>first_chunk: tensor i owns chunks [first[i], first[i + 1]); first[count] is the number of chunks (the grid).</summary>
    public static long[] FirstChunks(ReadOnlySpan<NativeKernels.AdamWTensor> tensors)
    {
        var first = new long[tensors.Length + 1];
        for (int i = 0; i < tensors.Length; i++) first[i + 1] = first[i] + (tensors[i].Numel + Chunk - 1) / Chunk;
        return first;
    }

    // The last table uploaded. A training loop passes the same tensors at every step (gradients are zeroed in place),
    // so the two synchronous host-to-device copies happen once rather than before every launch. Equal descriptor
    // bytes mean equal device contents, so reuse is exact. Callers hold TableLock from the lookup to the enqueue, so
    // a table is never replaced (and freed) in between; a replaced table goes back to torch's caching allocator,
    // which hands it only to later work on the same stream.
    static readonly object TableLock = new();
    static (byte[] Key, DeviceTable Table)? lastTable;

    /// <summary>Tables uploaded so far (tests).</summary>
    internal static int TableUploads { get; private set; }

    static DeviceTable TableFor(ReadOnlySpan<NativeKernels.AdamWTensor> tensors, Device device)
    {
        byte[] key = [.. MemoryMarshal.AsBytes(tensors), .. BitConverter.GetBytes((int)device.type), .. BitConverter.GetBytes(device.index)];
        if (lastTable is { } last && last.Key.AsSpan().SequenceEqual(key)) return last.Table;
        lastTable?.Table.Dispose();
        lastTable = null;
        var table = new DeviceTable(tensors, device);
        TableUploads++;
        lastTable = (key, table);
        return table;
    }

    /// <summary>The tensor list and its chunk table in device memory.</summary>
    sealed class DeviceTable : IDisposable
    {
        public readonly Tensor Descriptors, FirstChunk;
        public readonly long Chunks;
        public readonly int Count;

        public DeviceTable(ReadOnlySpan<NativeKernels.AdamWTensor> tensors, Device device)
        {
            if (tensors.Length > int.MaxValue / 2) throw new EngineException("too many parameter tensors for the CUDA AdamW");
            Count = tensors.Length;
            long[] first = FirstChunks(tensors);
            Chunks = first[^1];
            if (Chunks > int.MaxValue) throw new EngineException($"{Chunks} chunks of {Chunk} elements exceed the CUDA AdamW's grid");
            var hostDescriptors = empty(new long[] { Math.Max(1, tensors.Length) * (long)Marshal.SizeOf<NativeKernels.AdamWTensor>() }, ScalarType.Byte);
            MemoryMarshal.AsBytes(tensors).CopyTo(hostDescriptors.bytes);
            var hostFirst = tensor(first);
            Descriptors = ToDevice(hostDescriptors, device);
            FirstChunk = ToDevice(hostFirst, device);
        }

        // A synchronous copy from pageable memory: the host tensor may go at once (on a CPU device it is the table).
        static Tensor ToDevice(Tensor host, Device device)
        {
            var moved = host.to(device);
            if (!ReferenceEquals(moved, host)) host.Dispose();
            return moved;
        }

        public void Dispose()
        {
            Descriptors.Dispose();
            FirstChunk.Dispose();
        }
    }

    /// <summary>Σ g² over every gradient (double accumulation in a fixed order); waits for the device to read it.</summary>
    public static double GradSumSquares(ReadOnlySpan<NativeKernels.AdamWTensor> tensors, Device device)
    {
        var f = For(device.index);
        lock (TableLock)
        {
            var table = TableFor(tensors, device);
            if (table.Chunks == 0) return 0;
            using var partials = empty(new long[] { table.Chunks }, ScalarType.Float64, device);
            using var sum = empty(new long[] { 1 }, ScalarType.Float64, device);
            using var scale = empty(new long[] { 1 }, ScalarType.Float32, device);
            using (var a = new KernelArguments()
                .Pointer("tensors", TensorMemory.DataPointer(table.Descriptors), "AdamWTensorDesc")
                .Pointer("first_chunk", TensorMemory.DataPointer(table.FirstChunk), "long long").Int("count", table.Count)
                .Pointer("partials", TensorMemory.DataPointer(partials), "double"))
                a.Launch(f.Context, f.SumSquares, "adamw_grad_sum_squares", ((uint)table.Chunks, 1), Threads);
            // max_norm 0: the factor is decided on the host from the (possibly rank-agreed) norm; the kernel's is unused.
            using (var a = new KernelArguments()
                .Pointer("partials", TensorMemory.DataPointer(partials), "double").Long("chunks", table.Chunks).Float("max_norm", 0f)
                .Pointer("sum_squares", TensorMemory.DataPointer(sum), "double").Pointer("grad_scale", TensorMemory.DataPointer(scale), "float"))
                a.Launch(f.Context, f.ClipScale, "adamw_clip_scale", (1, 1), Threads);
            // The one wait: the norm goes to the host. torch's copy runs on the same stream, after the kernels.
            using var host = sum.cpu();
            return host.data<double>()[0];
        }
    }

    /// <summary>One AdamW update of every tensor, each gradient multiplied by hyper.GradScale as it is read.</summary>
    public static void Step(ReadOnlySpan<NativeKernels.AdamWTensor> tensors, in NativeKernels.AdamWHyper hyper, Device device)
    {
        var f = For(device.index);
        lock (TableLock)
        {
            var table = TableFor(tensors, device);
            if (table.Chunks == 0) return;
            using var a = new KernelArguments()
                .Pointer("tensors", TensorMemory.DataPointer(table.Descriptors), "AdamWTensorDesc")
                .Pointer("first_chunk", TensorMemory.DataPointer(table.FirstChunk), "long long").Int("count", table.Count)
                .Struct("h", "AdamWHyperParams", hyper)
                .Pointer("grad_scale", IntPtr.Zero, "float");
            a.Launch(f.Context, f.Step, "adamw_step", ((uint)table.Chunks, 1), Threads);
        }
    }
}
