using System.Runtime.InteropServices;
using Engine.Kernels;
using Engine.Kernels.Cuda;

namespace Engine.Tests.Kernels;

/// <summary>
/// The CUDA launch path without a GPU: a recording stand-in for libcuda (the same function-pointer table the
/// real driver fills) sees every driver call our code makes. Launches go on the caller's stream and nothing
/// waits for the device afterwards.
/// </summary>
public unsafe class CudaLaunchTests
{
    static readonly List<string> Calls = new();
    static readonly List<(IntPtr Function, uint GridX, uint GridY, uint Block, IntPtr Stream, long[] IntArgs)> Launches = new();
    static readonly List<int> LoadedImageBytes = new();
    static readonly Dictionary<string, IntPtr> Functions = new();

    [UnmanagedCallersOnly] static int Init(uint flags) { Calls.Add("cuInit"); return 0; }
    [UnmanagedCallersOnly] static int DriverGetVersion(int* v) { *v = 12040; return 0; }
    [UnmanagedCallersOnly] static int DeviceGet(int* device, int ordinal) { Calls.Add("cuDeviceGet"); *device = ordinal; return 0; }
    [UnmanagedCallersOnly] static int DeviceGetAttribute(int* value, int attribute, int device) { *value = attribute == 75 ? 8 : 9; return 0; }
    [UnmanagedCallersOnly] static int PrimaryCtxRetain(IntPtr* context, int device) { Calls.Add("cuDevicePrimaryCtxRetain"); *context = 0x1000; return 0; }
    [UnmanagedCallersOnly] static int CtxPushCurrent(IntPtr context) { Calls.Add("cuCtxPushCurrent"); return context == 0x1000 ? 0 : 201; }
    [UnmanagedCallersOnly] static int CtxPopCurrent(IntPtr* context) { Calls.Add("cuCtxPopCurrent"); *context = 0x1000; return 0; }
    [UnmanagedCallersOnly] static int ModuleLoadData(IntPtr* module, void* image) { Calls.Add("cuModuleLoadData"); *module = 0x2000 + LoadedImageBytes.Count; LoadedImageBytes.Add(1); return 0; }
    [UnmanagedCallersOnly]
    static int ModuleGetFunction(IntPtr* function, IntPtr module, byte* name)
    {
        string n = Marshal.PtrToStringAnsi((IntPtr)name)!;
        Functions[n] = *function = 0x3000 + Functions.Count;
        return 0;
    }
    [UnmanagedCallersOnly]
    static int LaunchKernel(IntPtr f, uint gx, uint gy, uint gz, uint bx, uint by, uint bz, uint shared, IntPtr stream, void** args, void** extra)
    {
        Calls.Add("cuLaunchKernel");
        // Arguments 2..5 read as 32-bit ints: (rows, vocab) are 2, 3 in the forward and 4, 5 in the backward;
        // (batch, tokens) are 4, 5 in z0. Every argument slot points to at least 4 bytes.
        Launches.Add((f, gx, gy, bx, stream, new long[] { *(int*)args[2], *(int*)args[3], *(int*)args[4], *(int*)args[5] }));
        return 0;
    }
    [UnmanagedCallersOnly] static int MemGetInfo(nuint* free, nuint* total) { *free = 1; *total = 2; return 0; }
    [UnmanagedCallersOnly] static int GetErrorString(int status, byte** text) { *text = null; return 1; }

    static CudaDriver.Api Fake() => new()
    {
        Init = &Init, DriverGetVersion = &DriverGetVersion, DeviceGet = &DeviceGet, DeviceGetAttribute = &DeviceGetAttribute,
        PrimaryCtxRetain = &PrimaryCtxRetain, CtxPushCurrent = &CtxPushCurrent, CtxPopCurrent = &CtxPopCurrent,
        ModuleLoadData = &ModuleLoadData, ModuleGetFunction = &ModuleGetFunction, LaunchKernel = &LaunchKernel,
        MemGetInfo = &MemGetInfo, GetErrorString = &GetErrorString,
    };

    [Fact]
    public void LaunchesGoOnTheCallersStreamWithoutWaiting()
    {
        Assert.True(KernelCompiler.CompilerAvailable, KernelCompiler.CompilerUnavailableReason); // the modules are compiled for real
        Calls.Clear(); Launches.Clear(); Functions.Clear(); LoadedImageBytes.Clear();
        bool realDriver = CudaDriver.IsAvailable;
        using (CudaDriver.Substitute(Fake()))
        {
            Assert.True(CudaDriver.IsAvailable);
            // First use of the device: context, compute capability, both modules (NVRTC images for sm_89).
            CudaKernels.For(0);
            Assert.Equal(2, LoadedImageBytes.Count);
            Calls.Clear();

            IntPtr stream = 0x7777; // any stream the caller names is the one used
            CudaKernels.LaunchForward(0, bf16: false, rows: 6, vocab: 3001, 0x10, 0x20, 0x30, 0x40, 0x50, stream);
            CudaKernels.LaunchBackward(0, bf16: true, rows: 6, vocab: 3001, 0x10, 0x20, 0x40, 0x60, 0x10, stream);
            CudaKernels.LaunchKlZ0(0, 4, 100, 0x10, 0x20, 0, 0x30, 0x40, 0x50, 0x60, 0x70, stream);

            // Per launch: make the primary context current, enqueue, restore. No synchronisation of any kind.
            var perLaunch = new[] { "cuCtxPushCurrent", "cuLaunchKernel", "cuCtxPopCurrent" };
            Assert.Equal(perLaunch.Concat(perLaunch).Concat(perLaunch), Calls);
            Assert.All(Launches, l => Assert.Equal(stream, l.Stream));
            Assert.Equal(Functions["token_logprob_forward_f32"], Launches[0].Function);
            Assert.Equal((6u, 1u, 256u), (Launches[0].GridX, Launches[0].GridY, Launches[0].Block));
            Assert.Equal((6L, 3001L), (Launches[0].IntArgs[0], Launches[0].IntArgs[1]));
            Assert.Equal(Functions["token_logprob_backward_bf16"], Launches[1].Function);
            Assert.Equal((6u, 2u, 256u), (Launches[1].GridX, Launches[1].GridY, Launches[1].Block)); // 3001 / (256 × 8) → 2 tiles
            Assert.Equal((6L, 3001L), (Launches[1].IntArgs[2], Launches[1].IntArgs[3]));
            Assert.Equal(Functions["kl_z0_reduce"], Launches[2].Function);
            Assert.Equal((1u, 1u, 256u), (Launches[2].GridX, Launches[2].GridY, Launches[2].Block));
            Assert.Equal((4L, 100L), (Launches[2].IntArgs[2], Launches[2].IntArgs[3]));

            // Tensor callers use torch's stream: the device's default stream, handle 0.
            Assert.Equal(IntPtr.Zero, CudaKernels.CallerStream);
        }
        Assert.Equal(realDriver, CudaDriver.IsAvailable); // the real driver (absent here) is back
    }

    [Fact]
    public void WithoutADriverTheCudaPathSaysSo()
    {
        if (CudaDriver.IsAvailable) return; // a machine with a GPU: CudaToolingTests runs the kernels
        var e = Assert.Throws<EngineException>(() => CudaKernels.For(0));
        Assert.Contains("NVIDIA driver (libcuda.so.1)", e.Message);
        Assert.Contains("CPU tensors", e.Message);
    }
}
