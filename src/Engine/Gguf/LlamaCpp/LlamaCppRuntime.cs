using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using LLama.Native;

namespace Engine.Gguf.LlamaCpp;

/// <summary>
/// Loads llama.cpp through LLamaSharp once per process, deterministically: Engine picks one CPU build of the
/// libraries that LLamaSharp.Backend.Cpu ships (runtimes/linux-x64/native/{noavx,avx,avx2,avx512}), LLamaSharp loads
/// exactly that one (no silent fall back to another level or to a system libllama), and the choice is checked after
/// loading. The level is the highest the CPU supports, or <c>ENGINE_LLAMA_AVX</c> when set. llama.cpp's log is
/// kept quiet (its warnings and errors are kept for error messages); <c>ENGINE_LLAMA_LOG=1</c> prints it.
/// </summary>
public static class LlamaCppRuntime
{
    public const string AvxVariable = "ENGINE_LLAMA_AVX";
    public const string LogVariable = "ENGINE_LLAMA_LOG";

    /// <summary>The libraries of one CPU level, loaded in this order by LLamaSharp (dependencies first).</summary>
    static readonly string[] LibraryFiles = { "libggml-base.so", "libggml-cpu.so", "libggml.so", "libllama.so" };

    static readonly object Gate = new();
    static readonly ConcurrentQueue<string> RecentMessages = new();
    static string? _libraryDirectory;
    static EngineException? _failure;

    /// <summary>The folder the libraries were loaded from (after <see cref="EnsureLoaded"/>).</summary>
    public static string? LibraryDirectory => _libraryDirectory;

    /// <summary>The CPU build in use or about to be used: noavx, avx, avx2 or avx512.</summary>
    public static string CpuLevel => LevelName(ChooseLevel());

    /// <summary>Whether the libraries for this machine are present next to Engine (a restored build).</summary>
    public static bool IsAvailable => _libraryDirectory != null || (TryChooseLevel(out var level, out _) && MissingFiles(LevelDirectory(level)).Count == 0);

    /// <summary>Loads the libraries and initialises llama.cpp once; throws a clear error when that is impossible.</summary>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_libraryDirectory != null) return;
            if (_failure != null) throw _failure;
            try { _libraryDirectory = Load(); }
            catch (EngineException e) { _failure = e; throw; }
        }
    }

    static string Load()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux) || RuntimeInformation.ProcessArchitecture != Architecture.X64)
            throw new EngineException($"llama.cpp validation runs on linux-x64 only (this is {RuntimeInformation.RuntimeIdentifier})");
        var level = ChooseLevel();
        string directory = LevelDirectory(level);
        var missing = MissingFiles(directory);
        if (missing.Count > 0)
            throw new EngineException($"llama.cpp libraries not found: {directory} lacks {string.Join(", ", missing)} "
                + "(they come from the LLamaSharp.Backend.Cpu package: run ./build.sh or dotnet build)");

        // Configuration is only possible before LLamaSharp's first native call; the check below catches anyone
        // who got there first with another choice.
        if (!NativeLibraryConfig.LLama.LibraryHasLoaded)
        {
            NativeLibraryConfig.All
                .WithCuda(HasCudaBackend())
                .WithVulkan(false)
                .WithAvx(level)
                .WithAutoFallback(false)
                .WithSearchDirectory(EngineDirectory)
                .WithLogCallback(OnLog);
        }
        try { NativeApi.llama_empty_call(); }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or LLama.Exceptions.RuntimeError)
        {
            throw new EngineException($"llama.cpp ({LevelName(level)} build in {directory}) could not be loaded: "
                + $"{(e.InnerException ?? e).Message.Split('\n')[0]} {Describe(DrainMessages())}".TrimEnd());
        }
        var loaded = NativeApi.GetLoadedNativeLibrary(NativeLibraryName.LLama)?.Metadata;
        if (loaded is null || loaded.AvxLevel != level)
            throw new EngineException($"llama.cpp was loaded as {loaded?.ToString() ?? "an unknown library"}, not the {LevelName(level)} build Engine chose "
                + "(something configured LLamaSharp before Engine did)");
        return directory;
    }

    static string EngineDirectory => Path.GetDirectoryName(typeof(LlamaCppRuntime).Assembly.Location) is { Length: > 0 } d ? d : AppContext.BaseDirectory;

    static string LevelDirectory(AvxLevel level) => Path.Combine(EngineDirectory, "runtimes", "linux-x64", "native", LevelName(level));

    static List<string> MissingFiles(string directory) => LibraryFiles.Where(f => !File.Exists(Path.Combine(directory, f))).ToList();

    /// <summary>The CUDA backend is used when it was built in (-p:EngineLlamaBackend=cuda); computation for
    /// validation still stays on the CPU (no layers offloaded, no op offload).</summary>
    static bool HasCudaBackend() => Directory.Exists(Path.Combine(EngineDirectory, "runtimes", "linux-x64", "native", "cuda12"));

    static AvxLevel ChooseLevel() =>
        TryChooseLevel(out var level, out var error) ? level : throw new EngineException(error!);

    static bool TryChooseLevel(out AvxLevel level, out string? error)
    {
        error = null;
        string? requested = Environment.GetEnvironmentVariable(AvxVariable);
        if (string.IsNullOrEmpty(requested))
        {
            level = DetectLevel();
            return true;
        }
        AvxLevel? parsed = requested.ToLowerInvariant() switch
        {
            "noavx" => AvxLevel.None, "avx" => AvxLevel.Avx, "avx2" => AvxLevel.Avx2, "avx512" => AvxLevel.Avx512, _ => null,
        };
        level = parsed ?? AvxLevel.None;
        if (parsed is null) error = $"{AvxVariable}={requested}: expected noavx, avx, avx2 or avx512";
        else if (level > DetectLevel()) error = $"{AvxVariable}={requested}: this CPU supports at most {LevelName(DetectLevel())}";
        return error is null;
    }

    /// <summary>The same rule as LLamaSharp's own detection: the avx512 build also needs AVX-512 BW and VBMI.</summary>
    static AvxLevel DetectLevel()
    {
        if (Avx512F.IsSupported && Avx512BW.IsSupported && Avx512Vbmi.IsSupported) return AvxLevel.Avx512;
        if (Avx2.IsSupported) return AvxLevel.Avx2;
        if (Avx.IsSupported) return AvxLevel.Avx;
        return AvxLevel.None;
    }

    static string LevelName(AvxLevel level) => level switch
    {
        AvxLevel.None => "noavx", AvxLevel.Avx => "avx", AvxLevel.Avx2 => "avx2", _ => "avx512",
    };

    static void OnLog(LLamaLogLevel level, string message)
    {
        if (Environment.GetEnvironmentVariable(LogVariable) == "1") Console.Error.Write(message);
        if (level is LLamaLogLevel.Warning or LLamaLogLevel.Error)
        {
            RecentMessages.Enqueue(message.TrimEnd());
            while (RecentMessages.Count > 20) RecentMessages.TryDequeue(out _);
        }
    }

    /// <summary>Takes the warnings and errors llama.cpp logged since the last call (for error messages).</summary>
    public static string DrainMessages()
    {
        var lines = new List<string>();
        while (RecentMessages.TryDequeue(out var m)) if (m.Length > 0) lines.Add(m);
        return string.Join("; ", lines);
    }

    internal static string Describe(string messages) => messages.Length > 0 ? $"({messages})" : "";
}
