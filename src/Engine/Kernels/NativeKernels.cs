using System.Runtime.InteropServices;

namespace Engine.Kernels;

/// <summary>
/// The CPU kernels of libengine_native.so (native/, built by ./build.sh), bound through function pointers from
/// <see cref="NativeLibrary"/> so no assembly-wide DllImport resolver is claimed. All pointers are to contiguous
/// CPU memory; shapes are checked by the callers.
/// </summary>
internal static unsafe class NativeKernels
{
    public const string LibraryFile = "libengine_native.so";
    const int ExpectedAbi = 7;

    public const int DtypeF32 = 0, DtypeBf16 = 1;
    const int Ok = 0, BadArgument = 1, LabelOutOfRange = 2;

    sealed class Api
    {
        public delegate* unmanaged<int> AbiVersion;
        public delegate* unmanaged<int> CpuIsa;
        public delegate* unmanaged<int> FusedBf16Conversions;
        public delegate* unmanaged<int, int> ForceIsa;
        public delegate* unmanaged<int, void> SetThreads;
        public delegate* unmanaged<int> Threads;
        public delegate* unmanaged<IntPtr> ShareOpenMpRuntime;
        public delegate* unmanaged<void*, int, long*, long, long, long, float*, float*, float*, long*, int> Forward;
        public delegate* unmanaged<void*, int, long*, float*, float*, long, long, long, void*, int> Backward;
        public delegate* unmanaged<void*, int, long, long, float*, int> FloorExpSum;
        public delegate* unmanaged<float*, float*, float*, byte*, long, long, float*, float*, double*, int> KlZ0;
        public delegate* unmanaged<void*, long, int> AdviseHugePages;
        public delegate* unmanaged<void*, void*, int, long, long, float, int, void*, float*, int> RmsNormForward;
        public delegate* unmanaged<void*, void*, float*, void*, int, long, long, int, void*, void*, int> RmsNormBackward;
        public delegate* unmanaged<void*, int, float*, float*, long, long, long, int, int> Rope;
        public delegate* unmanaged<void*, long, long, long, void*, int, float*, float*, long, long, long, long, int, int> RopeStrided;
        public delegate* unmanaged<int, void*, void*, int, long, void*, int> GluForward;
        public delegate* unmanaged<int, void*, void*, void*, int, long, void*, void*, int> GluBackward;
        public delegate* unmanaged<AdamWTensor*, long, double*, int> AdamWGradSumSquares;
        public delegate* unmanaged<AdamWTensor*, long, AdamWHyper*, int> AdamWStep;
        public delegate* unmanaged<AdamWTensor*, long, AdamWHyper*, int> AdamWFloor;
    }

    static readonly Lazy<(Api? Api, string? Error)> Loaded = new(Load);

    /// <summary>Where the library was found, or null.</summary>
    public static string? LoadedFrom { get; private set; }

    public static bool IsAvailable => Loaded.Value.Api is not null;

    /// <summary>Throws the EngineException that says how to build the library when it is missing.</summary>
    public static void EnsureAvailable() => Require();

    static Api Require()
    {
        var (api, error) = Loaded.Value;
        return api ?? throw new EngineException(error!);
    }

    static IEnumerable<string> Candidates()
    {
        if (Environment.GetEnvironmentVariable("ENGINE_NATIVE_LIB") is { Length: > 0 } explicitPath) yield return explicitPath;
        yield return Path.Combine(AppContext.BaseDirectory, LibraryFile);
        // Running from a source tree (bin/Release/...): native/build/ of the repository.
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "native", "build", LibraryFile);
            if (File.Exists(candidate)) { yield return candidate; break; }
        }
    }

    static (Api?, string?) Load() => LoadFrom(Candidates());

    /// <summary>Why the library at none of <paramref name="candidates"/> can be used, or null when one can (tests).</summary>
    internal static string? ProbeError(IEnumerable<string> candidates) => LoadFrom(candidates).Item2;

    static (Api?, string?) LoadFrom(IEnumerable<string> candidates)
    {
        var tried = new List<string>();
        foreach (string path in candidates)
        {
            tried.Add(path);
            if (!File.Exists(path) || !NativeLibrary.TryLoad(path, out IntPtr handle)) continue;
            try
            {
                var api = new Api
                {
                    AbiVersion = (delegate* unmanaged<int>)NativeLibrary.GetExport(handle, "engine_native_abi_version"),
                    CpuIsa = (delegate* unmanaged<int>)NativeLibrary.GetExport(handle, "engine_cpu_isa"),
                    FusedBf16Conversions = (delegate* unmanaged<int>)NativeLibrary.GetExport(handle, "engine_fused_bf16_conversions"),
                    ForceIsa = (delegate* unmanaged<int, int>)NativeLibrary.GetExport(handle, "engine_force_isa"),
                    SetThreads = (delegate* unmanaged<int, void>)NativeLibrary.GetExport(handle, "engine_set_threads"),
                    Threads = (delegate* unmanaged<int>)NativeLibrary.GetExport(handle, "engine_threads"),
                    ShareOpenMpRuntime = (delegate* unmanaged<IntPtr>)NativeLibrary.GetExport(handle, "engine_share_openmp_runtime"),
                    Forward = (delegate* unmanaged<void*, int, long*, long, long, long, float*, float*, float*, long*, int>)NativeLibrary.GetExport(handle, "engine_logprob_forward"),
                    Backward = (delegate* unmanaged<void*, int, long*, float*, float*, long, long, long, void*, int>)NativeLibrary.GetExport(handle, "engine_logprob_backward"),
                    FloorExpSum = (delegate* unmanaged<void*, int, long, long, float*, int>)NativeLibrary.GetExport(handle, "engine_floor_exp_sum"),
                    KlZ0 = (delegate* unmanaged<float*, float*, float*, byte*, long, long, float*, float*, double*, int>)NativeLibrary.GetExport(handle, "engine_kl_z0"),
                    AdviseHugePages = (delegate* unmanaged<void*, long, int>)NativeLibrary.GetExport(handle, "engine_advise_huge_pages"),
                    RmsNormForward = (delegate* unmanaged<void*, void*, int, long, long, float, int, void*, float*, int>)NativeLibrary.GetExport(handle, "engine_rmsnorm_forward"),
                    RmsNormBackward = (delegate* unmanaged<void*, void*, float*, void*, int, long, long, int, void*, void*, int>)NativeLibrary.GetExport(handle, "engine_rmsnorm_backward"),
                    Rope = (delegate* unmanaged<void*, int, float*, float*, long, long, long, int, int>)NativeLibrary.GetExport(handle, "engine_rope"),
                    RopeStrided = (delegate* unmanaged<void*, long, long, long, void*, int, float*, float*, long, long, long, long, int, int>)NativeLibrary.GetExport(handle, "engine_rope_strided"),
                    GluForward = (delegate* unmanaged<int, void*, void*, int, long, void*, int>)NativeLibrary.GetExport(handle, "engine_glu_forward"),
                    GluBackward = (delegate* unmanaged<int, void*, void*, void*, int, long, void*, void*, int>)NativeLibrary.GetExport(handle, "engine_glu_backward"),
                    AdamWGradSumSquares = (delegate* unmanaged<AdamWTensor*, long, double*, int>)NativeLibrary.GetExport(handle, "engine_adamw_grad_sum_squares"),
                    AdamWStep = (delegate* unmanaged<AdamWTensor*, long, AdamWHyper*, int>)NativeLibrary.GetExport(handle, "engine_adamw_step"),
                    AdamWFloor = (delegate* unmanaged<AdamWTensor*, long, AdamWHyper*, int>)NativeLibrary.GetExport(handle, "engine_adamw_floor"),
                };
                int abi = api.AbiVersion();
                if (abi != ExpectedAbi)
                    return (null, $"{path} is a stale build of the native kernels (ABI {abi}, expected {ExpectedAbi}): run ./build.sh to rebuild native/");
                LoadedFrom ??= path;
                return (api, null);
            }
            catch (EntryPointNotFoundException e)
            {
                return (null, $"{path} lacks a kernel entry point ({e.Message}): run ./build.sh to rebuild native/");
            }
        }
        return (null, $"the native kernel library {LibraryFile} was not found (looked in {string.Join(", ", tried)}): " +
                      "run ./build.sh to build native/ (or use --logprob naive)");
    }

    /// <summary>
    /// How the fused layer kernels round bf16 outputs: "avx512bf16" (the CPU's conversion instruction, where it has one
    /// and the ISA is avx512) or "integer" (the same rounding to nearest even in integer ops).
    /// </summary>
    public static string Bf16Conversions => Require().FusedBf16Conversions() != 0 ? "avx512bf16" : "integer";

    public static string IsaName
    {
        get
        {
            int isa = Require().CpuIsa();
            return isa switch { 2 => "avx512", 1 => "avx2", _ => "scalar" };
        }
    }

    /// <summary>Forces the CPU kernels' instruction set ("scalar", "avx2", "avx512", or null for automatic).</summary>
    public static bool TryForceIsa(string? isa)
    {
        int code = isa switch { null => -1, "scalar" => 0, "avx2" => 1, "avx512" => 2, _ => throw new ArgumentException($"unknown ISA '{isa}'") };
        return Require().ForceIsa(code) == Ok;
    }

    /// <summary>
    /// Participants of the kernels' worker pool (the calling thread included). Setting a positive count pins it;
    /// 0 returns to the rule: ENGINE_NATIVE_THREADS when set, otherwise torch's intra-op thread count.
    /// </summary>
    public static int Threads
    {
        get
        {
            FollowTorchThreads();
            return Require().Threads();
        }
        set
        {
            lock (ThreadsLock)
            {
                pinnedThreads = value > 0 ? value : null;
                appliedTorchThreads = 0;
                Require().SetThreads(value > 0 ? value : 0);
            }
            FollowTorchThreads();
        }
    }

    static readonly object ThreadsLock = new();
    static int? pinnedThreads;
    static int appliedTorchThreads;
    static readonly bool ThreadsFromEnvironment = int.TryParse(Environment.GetEnvironmentVariable("ENGINE_NATIVE_THREADS"), out int n) && n > 0;

    /// <summary>
    /// The thread rule (docs/kernels.md, "Threads"): the pool is as large as libtorch's intra-op pool, read again
    /// before each kernel call so a later torch.set_num_threads is followed. The kernels are called between torch
    /// operations, never inside one, so torch's threads and ours take turns instead of competing for cores.
    /// </summary>
    static void FollowTorchThreads()
    {
        ShareTorchOpenMp();
        if (pinnedThreads is not null || ThreadsFromEnvironment) return;
        int torchThreads = TorchSharp.torch.get_num_threads();
        if (torchThreads == appliedTorchThreads) return;
        lock (ThreadsLock)
        {
            if (pinnedThreads is not null || torchThreads == appliedTorchThreads) return;
            Require().SetThreads(torchThreads);
            appliedTorchThreads = torchThreads;
        }
    }

    static volatile bool openMpShared;
    static string? openMpRuntime;

    /// <summary>
    /// Once libtorch is loaded, the kernels' parallel work runs on its OpenMP runtime (native/src/thread_pool.h):
    /// libgomp keeps torch's workers spinning for a while after each op, and a kernel on our own workers right after
    /// one ran at up to half speed on the cores they held. Null: the kernels' own workers.
    /// </summary>
    public static string? ThreadRuntime
    {
        get { ShareTorchOpenMp(); return openMpRuntime; }
    }

    static void ShareTorchOpenMp()
    {
        if (openMpShared) return;
        lock (ThreadsLock)
        {
            if (openMpShared) return;
            _ = TorchSharp.torch.get_num_threads(); // libtorch (and its libgomp) loaded first
            openMpRuntime = Marshal.PtrToStringUTF8(Require().ShareOpenMpRuntime());
            openMpShared = true;
        }
    }

    public static void Forward(IntPtr logits, int dtype, IntPtr labels, long rows, long vocab, IntPtr logp, IntPtr stats, IntPtr means)
    {
        FollowTorchThreads();
        long badRow;
        int status = Require().Forward((void*)logits, dtype, (long*)labels, rows, vocab, TokenLogProbs.IgnoreIndex,
            (float*)logp, (float*)stats, (float*)means, &badRow);
        if (status == LabelOutOfRange)
        {
            long label = ((long*)labels)[badRow];
            throw new EngineException($"label {label} at row {badRow} is outside the vocabulary [0, {vocab}) (and is not the ignore index {TokenLogProbs.IgnoreIndex})");
        }
        Check(status, "engine_logprob_forward");
    }

    public static void Backward(IntPtr logits, int dtype, IntPtr labels, IntPtr stats, IntPtr gradOut, long rows, long vocab, IntPtr grad)
    {
        FollowTorchThreads();
        Check(Require().Backward((void*)logits, dtype, (long*)labels, (float*)stats, (float*)gradOut, rows, vocab, TokenLogProbs.IgnoreIndex, (void*)grad),
            "engine_logprob_backward");
    }

    public static void FloorExpSum(IntPtr logits, int dtype, long rows, long vocab, IntPtr output)
    {
        FollowTorchThreads();
        Check(Require().FloorExpSum((void*)logits, dtype, rows, vocab, (float*)output), "engine_floor_exp_sum");
    }

    public static void KlZ0(IntPtr policy, IntPtr referenceTokens, IntPtr referenceSums, IntPtr mask, long batch, long tokens,
                            IntPtr policySums, IntPtr referenceSumsOut, double* stats) =>
        Check(Require().KlZ0((float*)policy, (float*)referenceTokens, (float*)referenceSums, (byte*)mask, batch, tokens,
            (float*)policySums, (float*)referenceSumsOut, stats), "engine_kl_z0");

    /// <summary>Transparent huge pages for a fresh, untouched buffer (advisory; see engine_native.h).</summary>
    public static void AdviseHugePages(IntPtr buffer, long bytes) => Require().AdviseHugePages((void*)buffer, bytes);

    public static void RmsNormForward(IntPtr x, IntPtr w, int dtype, long rows, long n, float eps, int mode, IntPtr y, IntPtr invRms)
    {
        FollowTorchThreads();
        Check(Require().RmsNormForward((void*)x, (void*)w, dtype, rows, n, eps, mode, (void*)y, (float*)invRms), "engine_rmsnorm_forward");
    }

    public static void RmsNormBackward(IntPtr x, IntPtr w, IntPtr invRms, IntPtr dy, int dtype, long rows, long n, int mode, IntPtr dx, IntPtr dw)
    {
        FollowTorchThreads();
        Check(Require().RmsNormBackward((void*)x, (void*)w, (float*)invRms, (void*)dy, dtype, rows, n, mode, (void*)dx, (void*)dw), "engine_rmsnorm_backward");
    }

    public static void Rope(IntPtr x, int dtype, IntPtr cos, IntPtr sin, long tokens, long heads, long headDim, bool inverse)
    {
        FollowTorchThreads();
        Check(Require().Rope((void*)x, dtype, (float*)cos, (float*)sin, tokens, heads, headDim, inverse ? 1 : 0), "engine_rope");
    }

    /// <summary>RoPE from src [batch, seq, heads, headDim] at element strides (head_dim contiguous) into contiguous dst.</summary>
    public static void RopeStrided(IntPtr src, long batchStride, long tokenStride, long headStride, IntPtr dst, int dtype, IntPtr cos, IntPtr sin,
        long batch, long seq, long heads, long headDim, bool inverse)
    {
        FollowTorchThreads();
        Check(Require().RopeStrided((void*)src, batchStride, tokenStride, headStride, (void*)dst, dtype, (float*)cos, (float*)sin,
            batch, seq, heads, headDim, inverse ? 1 : 0), "engine_rope_strided");
    }

    public static void GluForward(int activation, IntPtr gate, IntPtr up, int dtype, long count, IntPtr h)
    {
        FollowTorchThreads();
        Check(Require().GluForward(activation, (void*)gate, (void*)up, dtype, count, (void*)h), "engine_glu_forward");
    }

    public static void GluBackward(int activation, IntPtr gate, IntPtr up, IntPtr dh, int dtype, long count, IntPtr dGate, IntPtr dUp)
    {
        FollowTorchThreads();
        Check(Require().GluBackward(activation, (void*)gate, (void*)up, (void*)dh, dtype, count, (void*)dGate, (void*)dUp), "engine_glu_backward");
    }

    /// <summary>One tensor of the multi-tensor AdamW (EngineAdamWTensor in engine_native.h).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct AdamWTensor
    {
        public IntPtr Param, Master, Grad, ExpAvg, ExpAvgSq;
        public long Numel;
        public int ParamDtype, StateDtype, Decay, Reserved;
    }

    /// <summary>The step's scalars (EngineAdamWHyper in engine_native.h), each rounded to f32 from its double value.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct AdamWHyper
    {
        public float Beta1, OneMinusBeta1, Beta2, OneMinusBeta2, Eps, BiasCorrection2, StepSize, DecayFactor, GradScale;
    }

    public static double AdamWGradSumSquares(ReadOnlySpan<AdamWTensor> tensors)
    {
        FollowTorchThreads();
        double sum;
        fixed (AdamWTensor* t = tensors) Check(Require().AdamWGradSumSquares(t, tensors.Length, &sum), "engine_adamw_grad_sum_squares");
        return sum;
    }

    public static void AdamWStep(ReadOnlySpan<AdamWTensor> tensors, in AdamWHyper hyper)
    {
        FollowTorchThreads();
        fixed (AdamWTensor* t = tensors)
        fixed (AdamWHyper* h = &hyper)
            Check(Require().AdamWStep(t, tensors.Length, h), "engine_adamw_step");
    }

    /// <summary>The update's memory-bandwidth floor (benchmarks only: it overwrites the arrays).</summary>
    public static void AdamWFloor(ReadOnlySpan<AdamWTensor> tensors, in AdamWHyper hyper)
    {
        FollowTorchThreads();
        fixed (AdamWTensor* t = tensors)
        fixed (AdamWHyper* h = &hyper)
            Check(Require().AdamWFloor(t, tensors.Length, h), "engine_adamw_floor");
    }

    static void Check(int status, string function)
    {
        if (status == Ok) return;
        throw status == BadArgument
            ? new ArgumentException($"{function}: invalid argument (a bug in the caller)")
            : new InvalidOperationException($"{function} failed with status {status}");
    }
}
