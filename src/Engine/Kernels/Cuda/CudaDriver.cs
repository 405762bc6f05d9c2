using System.Runtime.InteropServices;

namespace Engine.Kernels.Cuda;

/// <summary>
/// A thin binding of the CUDA driver API (libcuda.so.1) for launching our own kernels on the memory of TorchSharp
/// CUDA tensors: init, the device's primary context (the one libtorch uses, so pointers are shared), module load,
/// launch on a stream, memory info. ManagedCuda is not available on our feed.
/// </summary>
internal static unsafe class CudaDriver
{
    const int AttributeComputeCapabilityMajor = 75;
    const int AttributeComputeCapabilityMinor = 76;

    /// <summary>The driver entry points used; tests substitute recording fakes (<see cref="Substitute"/>).</summary>
    internal sealed class Api
    {
        public delegate* unmanaged<uint, int> Init;
        public delegate* unmanaged<int*, int> DriverGetVersion;
        public delegate* unmanaged<int*, int, int> DeviceGet;
        public delegate* unmanaged<int*, int, int, int> DeviceGetAttribute;
        public delegate* unmanaged<IntPtr*, int, int> PrimaryCtxRetain;
        public delegate* unmanaged<IntPtr, int> CtxPushCurrent;
        public delegate* unmanaged<IntPtr*, int> CtxPopCurrent;
        public delegate* unmanaged<IntPtr*, void*, int> ModuleLoadData;
        public delegate* unmanaged<IntPtr*, IntPtr, byte*, int> ModuleGetFunction;
        public delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> LaunchKernel;
        public delegate* unmanaged<nuint*, nuint*, int> MemGetInfo;
        public delegate* unmanaged<int, byte**, int> GetErrorString;
    }

    static readonly Lazy<(Api? Api, string? Error)> Loaded = new(Load);
    static Api? substitute;

    static (Api? Api, string? Error) Current => substitute is { } fake ? (fake, null) : Loaded.Value;

    public static bool IsAvailable => Current.Api is not null;

    /// <summary>Why the driver cannot be used, or null when it can.</summary>
    public static string? UnavailableReason => Current.Error;

    static Api Require()
    {
        var (api, error) = Current;
        return api ?? throw new EngineException(error!);
    }

    /// <summary>
    /// Tests without a GPU: every driver call goes to <paramref name="fake"/> until the returned scope is disposed
    /// (and the per-device modules loaded meanwhile are forgotten, before and after).
    /// </summary>
    internal static IDisposable Substitute(Api fake)
    {
        substitute = fake;
        ForgetLoadedModules();
        return new SubstituteScope();
    }

    sealed class SubstituteScope : IDisposable
    {
        public void Dispose()
        {
            substitute = null;
            ForgetLoadedModules();
        }
    }

    static void ForgetLoadedModules()
    {
        CudaKernels.ForgetDevices();
        LayerCudaKernels.ForgetDevices();
        AdamWCudaKernels.ForgetDevices();
        Quantized.QuantizedCudaKernels.ForgetDevices();
    }

    static (Api?, string?) Load()
    {
        IntPtr handle = IntPtr.Zero;
        foreach (string name in new[] { "libcuda.so.1", "libcuda.so" })
            if (NativeLibrary.TryLoad(name, out handle)) break;
        if (handle == IntPtr.Zero)
            return (null, "the CUDA kernels need the NVIDIA driver (libcuda.so.1), which is not installed on this machine; " +
                          "use CPU tensors (or --logprob naive) here");
        try
        {
            var api = new Api
            {
                Init = (delegate* unmanaged<uint, int>)NativeLibrary.GetExport(handle, "cuInit"),
                DriverGetVersion = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(handle, "cuDriverGetVersion"),
                DeviceGet = (delegate* unmanaged<int*, int, int>)NativeLibrary.GetExport(handle, "cuDeviceGet"),
                DeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)NativeLibrary.GetExport(handle, "cuDeviceGetAttribute"),
                PrimaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)NativeLibrary.GetExport(handle, "cuDevicePrimaryCtxRetain"),
                CtxPushCurrent = (delegate* unmanaged<IntPtr, int>)NativeLibrary.GetExport(handle, "cuCtxPushCurrent_v2"),
                CtxPopCurrent = (delegate* unmanaged<IntPtr*, int>)NativeLibrary.GetExport(handle, "cuCtxPopCurrent_v2"),
                ModuleLoadData = (delegate* unmanaged<IntPtr*, void*, int>)NativeLibrary.GetExport(handle, "cuModuleLoadData"),
                ModuleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)NativeLibrary.GetExport(handle, "cuModuleGetFunction"),
                LaunchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)NativeLibrary.GetExport(handle, "cuLaunchKernel"),
                MemGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)NativeLibrary.GetExport(handle, "cuMemGetInfo_v2"),
                GetErrorString = (delegate* unmanaged<int, byte**, int>)NativeLibrary.GetExport(handle, "cuGetErrorString"),
            };
            int status = api.Init(0);
            if (status != 0)
                return (null, $"the NVIDIA driver is installed but cuInit failed ({ErrorText(api, status)}): no usable GPU");
            return (api, null);
        }
        catch (EntryPointNotFoundException e)
        {
            return (null, $"the NVIDIA driver library lacks {e.Message}: the driver is too old for these kernels");
        }
    }

    static string ErrorText(Api api, int status)
    {
        byte* text = null;
        if (api.GetErrorString(status, &text) == 0 && text != null) return $"CUDA error {status}: {Marshal.PtrToStringAnsi((IntPtr)text)}";
        return $"CUDA error {status}";
    }

    static void Check(int status, string what)
    {
        if (status != 0) throw new EngineException($"{what} failed: {ErrorText(Require(), status)}");
    }

    public static int DriverVersion
    {
        get
        {
            int v;
            Check(Require().DriverGetVersion(&v), "cuDriverGetVersion");
            return v;
        }
    }

    /// <summary>The primary context of a device: the context libtorch's runtime API uses, so tensor pointers are valid in it.</summary>
    public static IntPtr PrimaryContext(int deviceIndex)
    {
        var api = Require();
        int device;
        Check(api.DeviceGet(&device, deviceIndex), $"cuDeviceGet({deviceIndex})");
        IntPtr context;
        Check(api.PrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
        return context;
    }

    public static (int Major, int Minor) ComputeCapability(int deviceIndex)
    {
        var api = Require();
        int device, major, minor;
        Check(api.DeviceGet(&device, deviceIndex), $"cuDeviceGet({deviceIndex})");
        Check(api.DeviceGetAttribute(&major, AttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute");
        Check(api.DeviceGetAttribute(&minor, AttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute");
        return (major, minor);
    }

    /// <summary>Makes <paramref name="context"/> current on this thread until the returned scope is disposed.</summary>
    public static ContextScope Enter(IntPtr context)
    {
        Check(Require().CtxPushCurrent(context), "cuCtxPushCurrent");
        return new ContextScope();
    }

    public readonly struct ContextScope : IDisposable
    {
        public void Dispose()
        {
            IntPtr popped;
            Require().CtxPopCurrent(&popped);
        }
    }

    /// <summary>Loads a cubin or a NUL-terminated PTX image into the current context.</summary>
    public static IntPtr LoadModule(byte[] image)
    {
        IntPtr module;
        fixed (byte* p = image) Check(Require().ModuleLoadData(&module, p), "cuModuleLoadData");
        return module;
    }

    public static IntPtr GetFunction(IntPtr module, string name)
    {
        byte[] ascii = System.Text.Encoding.ASCII.GetBytes(name + "\0");
        IntPtr function;
        fixed (byte* p = ascii) Check(Require().ModuleGetFunction(&function, module, p), $"cuModuleGetFunction({name})");
        return function;
    }

    /// <summary>
    /// Enqueues the kernel on <paramref name="stream"/> and returns without waiting: work on the same stream (the
    /// producers of the inputs before, the consumers of the outputs after) is ordered by the stream itself, as for
    /// torch's own kernels. A bad launch configuration fails here; a fault inside the kernel surfaces at the next
    /// synchronising call (CUDA_LAUNCH_BLOCKING=1 makes every launch synchronous when debugging).
    /// </summary>
    public static void Launch(IntPtr function, (uint X, uint Y) grid, uint blockThreads, IntPtr stream, void** arguments, string name) =>
        Check(Require().LaunchKernel(function, grid.X, grid.Y, 1, blockThreads, 1, 1, 0, stream, arguments, null), $"launch of {name}");

    /// <summary>Free and total memory of the current context's device, in bytes (cuMemGetInfo).</summary>
    public static (long Free, long Total) MemoryInfo(int deviceIndex)
    {
        using var scope = Enter(PrimaryContext(deviceIndex));
        nuint free, total;
        Check(Require().MemGetInfo(&free, &total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }
}
