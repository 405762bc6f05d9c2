using System.Runtime.InteropServices;
using System.Text;

namespace Engine.Kernels.Cuda;

/// <summary>One NVRTC compilation: the image (cubin, or NUL-terminated PTX) and the compiler's log.</summary>
internal sealed record NvrtcOutput(byte[] Image, bool IsCubin, string Log);

/// <summary>
/// A thin binding of NVRTC, CUDA's runtime compiler (libnvrtc.so: Debian's libnvrtc11.2 here). Compiles our
/// kernel sources to cubin for a given sm_XY (running ptxas, whose -v report gives registers and spills) or to PTX
/// for a compute_XY. Needs no GPU.
/// </summary>
internal static unsafe class Nvrtc
{
    sealed class Api
    {
        public delegate* unmanaged<int*, int*, int> Version;
        public delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> CreateProgram;
        public delegate* unmanaged<IntPtr, int, byte**, int> CompileProgram;
        public delegate* unmanaged<IntPtr*, int> DestroyProgram;
        public delegate* unmanaged<IntPtr, nuint*, int> GetLogSize;
        public delegate* unmanaged<IntPtr, byte*, int> GetLog;
        public delegate* unmanaged<IntPtr, nuint*, int> GetPtxSize;
        public delegate* unmanaged<IntPtr, byte*, int> GetPtx;
        public delegate* unmanaged<IntPtr, nuint*, int> GetCubinSize;
        public delegate* unmanaged<IntPtr, byte*, int> GetCubin;
        public delegate* unmanaged<int, byte*> GetErrorString;
    }

    static readonly string[] LibraryNames =
        { "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so.11.1", "libnvrtc.so.11.0", "libnvrtc.so" };

    static readonly Lazy<(Api? Api, string? Error, string? Library)> Loaded = new(Load);

    public static bool IsAvailable => Loaded.Value.Api is not null;
    public static string? UnavailableReason => Loaded.Value.Error;
    public static string? LibraryName => Loaded.Value.Library;

    static Api Require()
    {
        var (api, error, _) = Loaded.Value;
        return api ?? throw new EngineException(error!);
    }

    static (Api?, string?, string?) Load()
    {
        foreach (string name in LibraryNames)
        {
            if (!NativeLibrary.TryLoad(name, out IntPtr h)) continue;
            try
            {
                var api = new Api
                {
                    Version = (delegate* unmanaged<int*, int*, int>)NativeLibrary.GetExport(h, "nvrtcVersion"),
                    CreateProgram = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)NativeLibrary.GetExport(h, "nvrtcCreateProgram"),
                    CompileProgram = (delegate* unmanaged<IntPtr, int, byte**, int>)NativeLibrary.GetExport(h, "nvrtcCompileProgram"),
                    DestroyProgram = (delegate* unmanaged<IntPtr*, int>)NativeLibrary.GetExport(h, "nvrtcDestroyProgram"),
                    GetLogSize = (delegate* unmanaged<IntPtr, nuint*, int>)NativeLibrary.GetExport(h, "nvrtcGetProgramLogSize"),
                    GetLog = (delegate* unmanaged<IntPtr, byte*, int>)NativeLibrary.GetExport(h, "nvrtcGetProgramLog"),
                    GetPtxSize = (delegate* unmanaged<IntPtr, nuint*, int>)NativeLibrary.GetExport(h, "nvrtcGetPTXSize"),
                    GetPtx = (delegate* unmanaged<IntPtr, byte*, int>)NativeLibrary.GetExport(h, "nvrtcGetPTX"),
                    GetCubinSize = (delegate* unmanaged<IntPtr, nuint*, int>)NativeLibrary.GetExport(h, "nvrtcGetCUBINSize"),
                    GetCubin = (delegate* unmanaged<IntPtr, byte*, int>)NativeLibrary.GetExport(h, "nvrtcGetCUBIN"),
                    GetErrorString = (delegate* unmanaged<int, byte*>)NativeLibrary.GetExport(h, "nvrtcGetErrorString"),
                };
                return (api, null, name);
            }
            catch (EntryPointNotFoundException e)
            {
                return (null, $"{name} lacks {e.Message} (NVRTC 11.1 or newer is needed for cubin output)", name);
            }
        }
        return (null, "NVRTC (libnvrtc.so) is not installed: ./build.sh installs it on Debian (libnvrtc11.2 from non-free)", null);
    }

    public static string Version
    {
        get
        {
            int major, minor;
            Require().Version(&major, &minor);
            return $"{major}.{minor}";
        }
    }

    /// <summary>
    /// Compiles <paramref name="source"/> for <paramref name="architecture"/>: "sm_XY" gives a cubin (with ptxas's
    /// verbose report in the log), "compute_XY" gives PTX. Throws EngineException with the log on a compile error.
    /// A source already compiled with the same NVRTC and options comes from <see cref="NvrtcCache"/>.
    /// </summary>
    public static NvrtcOutput Compile(string source, string fileName, string architecture)
    {
        Require();
        var options = new List<string> { $"--gpu-architecture={architecture}", "--std=c++14" };
        if (architecture.StartsWith("sm_", StringComparison.Ordinal)) options.Add("--ptxas-options=-v");
        string key = NvrtcCache.Key($"{LibraryName} {Version}", options, fileName, source);
        return NvrtcCache.GetOrCompile(key, () => CompileUncached(source, fileName, architecture, options));
    }

    static NvrtcOutput CompileUncached(string source, string fileName, string architecture, List<string> options)
    {
        var api = Require();
        bool cubin = architecture.StartsWith("sm_", StringComparison.Ordinal);

        IntPtr program;
        byte[] src = Encoding.UTF8.GetBytes(source + "\0");
        byte[] name = Encoding.UTF8.GetBytes(fileName + "\0");
        fixed (byte* s = src, n = name) Check(api, api.CreateProgram(&program, s, n, 0, null, null), "nvrtcCreateProgram");
        try
        {
            var handles = options.Select(o => GCHandle.Alloc(Encoding.ASCII.GetBytes(o + "\0"), GCHandleType.Pinned)).ToList();
            int status;
            try
            {
                byte** optionPointers = stackalloc byte*[handles.Count];
                for (int i = 0; i < handles.Count; i++) optionPointers[i] = (byte*)handles[i].AddrOfPinnedObject();
                status = api.CompileProgram(program, handles.Count, optionPointers);
            }
            finally
            {
                foreach (var h in handles) h.Free();
            }
            string log = ReadLog(api, program);
            if (status != 0)
                throw new EngineException($"NVRTC failed to compile {fileName} for {architecture} ({ErrorText(api, status)}):\n{log.Trim()}");

            nuint size;
            byte[] image;
            if (cubin)
            {
                Check(api, api.GetCubinSize(program, &size), "nvrtcGetCUBINSize");
                image = new byte[(int)size];
                fixed (byte* p = image) Check(api, api.GetCubin(program, p), "nvrtcGetCUBIN");
            }
            else
            {
                Check(api, api.GetPtxSize(program, &size), "nvrtcGetPTXSize"); // includes the terminating NUL
                image = new byte[(int)size];
                fixed (byte* p = image) Check(api, api.GetPtx(program, p), "nvrtcGetPTX");
            }
            return new NvrtcOutput(image, cubin, log);
        }
        finally
        {
            api.DestroyProgram(&program);
        }
    }

    static string ReadLog(Api api, IntPtr program)
    {
        nuint size;
        if (api.GetLogSize(program, &size) != 0 || size <= 1) return "";
        var buffer = new byte[(int)size];
        fixed (byte* p = buffer) api.GetLog(program, p);
        return Encoding.UTF8.GetString(buffer, 0, buffer.Length - 1);
    }

    static string ErrorText(Api api, int status) => Marshal.PtrToStringAnsi((IntPtr)api.GetErrorString(status)) ?? $"status {status}";

    static void Check(Api api, int status, string what)
    {
        if (status != 0) throw new EngineException($"{what} failed: {ErrorText(api, status)}");
    }
}
