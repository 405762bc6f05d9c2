using System.Runtime.InteropServices;

namespace Engine.Kernels.Cuda;

/// <summary>
/// The kernelParams array of one cuLaunchKernel call, built parameter by parameter with the name and C type each
/// has in the kernel's extern "C" signature. The driver reads only the values; the names and types are there so a
/// test can hold every launcher's list against the .cu source (CudaLayerLaunchTests), which is the only check a
/// launch's argument order gets without a GPU. Values live in unmanaged memory until Dispose.
/// </summary>
internal sealed unsafe class KernelArguments : IDisposable
{
    readonly List<(string Name, string Type)> _parameters = new();
    readonly List<IntPtr> _values = new();
    void** _array;

    public IReadOnlyList<(string Name, string Type)> Parameters => _parameters;

    /// <summary>Tests: sees every launch (kernel name, grid, block, arguments) just before it is enqueued.</summary>
    internal static Action<string, (uint X, uint Y), uint, KernelArguments>? Observer;

    /// <summary>The element type of a dtype's buffers in the .cu files (bf16 travels as 16-bit integers).</summary>
    public static string Element(bool bf16) => bf16 ? "unsigned short" : "float";

    public KernelArguments Pointer(string name, IntPtr value, string element) => Add(name, element + "*", value);
    public KernelArguments Int(string name, int value) => Add(name, "int", value);
    public KernelArguments Long(string name, long value) => Add(name, "long long", value);
    public KernelArguments Float(string name, float value) => Add(name, "float", value);
    /// <summary>A struct passed by value; <typeparamref name="T"/> must have the C struct's layout.</summary>
    public KernelArguments Struct<T>(string name, string type, T value) where T : unmanaged => Add(name, type, value);

    KernelArguments Add<T>(string name, string type, T value) where T : unmanaged
    {
        if (_array != null) throw new InvalidOperationException("arguments added after the launch array was built");
        var slot = (T*)NativeMemory.AllocZeroed((nuint)Math.Max(sizeof(T), 8));
        *slot = value;
        _values.Add((IntPtr)slot);
        _parameters.Add((name, type));
        return this;
    }

    /// <summary>The void*[] cuLaunchKernel reads: element i points to parameter i's value.</summary>
    public void** Array
    {
        get
        {
            if (_array == null)
            {
                _array = (void**)NativeMemory.Alloc((nuint)Math.Max(_values.Count, 1), (nuint)sizeof(void*));
                for (int i = 0; i < _values.Count; i++) _array[i] = (void*)_values[i];
            }
            return _array;
        }
    }

    /// <summary>Enqueues <paramref name="function"/> (named <paramref name="kernel"/>) in <paramref name="context"/> on
    /// <paramref name="stream"/> (torch's, <see cref="CudaKernels.CallerStream"/>, when not given).</summary>
    public void Launch(IntPtr context, IntPtr function, string kernel, (uint X, uint Y) grid, uint blockThreads, IntPtr? stream = null)
    {
        if (grid.X == 0 || grid.Y == 0) throw new InvalidOperationException($"launch of {kernel} with an empty grid (a bug in the caller)");
        Observer?.Invoke(kernel, grid, blockThreads, this);
        using var scope = CudaDriver.Enter(context);
        CudaDriver.Launch(function, grid, blockThreads, stream ?? CudaKernels.CallerStream, Array, kernel);
    }

    public void Dispose()
    {
        foreach (var v in _values) NativeMemory.Free((void*)v);
        _values.Clear();
        if (_array != null) NativeMemory.Free(_array);
        _array = null;
    }
}
