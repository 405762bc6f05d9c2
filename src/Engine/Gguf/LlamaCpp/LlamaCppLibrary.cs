using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Engine.Gguf.LlamaCpp;

/// <summary>
/// Loads llama.cpp's CPU libraries (installed by ./build.sh from @node-llama-cpp/linux-x64@3.22.1 into
/// .tools/llama.cpp/lib, or from ENGINE_LLAMA_CPP_DIR) and resolves the C functions Engine calls. The libraries
/// are loaded by full path in dependency order (libggml-base, libggml.v*, libllama.v*), and their functions are
/// called through unmanaged function pointers, so no DllImport resolver is involved.
/// </summary>
public static unsafe class LlamaCppLibrary
{
    public const string DirectoryVariable = "ENGINE_LLAMA_CPP_DIR";

    static readonly object Gate = new();
    static bool _initialized;
    static string? _libraryDirectory;
    static readonly ConcurrentQueue<string> RecentMessages = new();

    // ggml / llama functions (cdecl on x64 Linux).
    internal static delegate* unmanaged[Cdecl]<void> BackendInit;
    internal static delegate* unmanaged[Cdecl]<byte*, void> BackendLoadAllFromPath;
    internal static delegate* unmanaged[Cdecl]<delegate* unmanaged[Cdecl]<int, byte*, void*, void>, void*, void> LogSet;
    internal static delegate* unmanaged[Cdecl]<LlamaModelParams> ModelDefaultParams;
    internal static delegate* unmanaged[Cdecl]<LlamaContextParams> ContextDefaultParams;
    internal static delegate* unmanaged[Cdecl]<byte*, LlamaModelParams, IntPtr> ModelLoadFromFile;
    internal static delegate* unmanaged[Cdecl]<IntPtr, void> ModelFree;
    internal static delegate* unmanaged[Cdecl]<IntPtr, LlamaContextParams, IntPtr> InitFromModel;
    internal static delegate* unmanaged[Cdecl]<IntPtr, void> Free;
    internal static delegate* unmanaged[Cdecl]<IntPtr, IntPtr> ModelGetVocab;
    internal static delegate* unmanaged[Cdecl]<IntPtr, int> VocabNTokens;
    internal static delegate* unmanaged[Cdecl]<IntPtr, int> VocabBos;
    internal static delegate* unmanaged[Cdecl]<IntPtr, int> VocabEos;
    internal static delegate* unmanaged[Cdecl]<IntPtr, byte*, int, int*, int, byte, byte, int> Tokenize;
    internal static delegate* unmanaged[Cdecl]<int, int, int, LlamaBatch> BatchInit;
    internal static delegate* unmanaged[Cdecl]<LlamaBatch, void> BatchFree;
    internal static delegate* unmanaged[Cdecl]<IntPtr, LlamaBatch, int> Decode;
    internal static delegate* unmanaged[Cdecl]<IntPtr, int, float*> GetLogitsIth;
    internal static delegate* unmanaged[Cdecl]<IntPtr, IntPtr> GetMemory;
    internal static delegate* unmanaged[Cdecl]<IntPtr, byte, void> MemoryClear;
    internal static delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, nuint, int> ModelMetaValStr;
    internal static delegate* unmanaged[Cdecl]<IntPtr, int> ModelNCtxTrain;
    internal static delegate* unmanaged[Cdecl]<GgmlType, float*, void*, long, long, long, float*, nuint> QuantizeChunk;
    internal static delegate* unmanaged[Cdecl]<GgmlType, void*> GetTypeTraits;

    /// <summary>The folder the libraries were loaded from (after <see cref="EnsureLoaded"/>).</summary>
    public static string? LibraryDirectory => _libraryDirectory;

    /// <summary>Finds the library folder: $ENGINE_LLAMA_CPP_DIR (the lib folder or its parent), else
    /// .tools/llama.cpp/lib above the running assembly (the repository checkout).</summary>
    public static string? FindLibraryDirectory()
    {
        foreach (var candidate in Candidates())
            if (Directory.Exists(candidate) && Directory.EnumerateFiles(candidate, "libllama.v*.so").Any()) return Path.GetFullPath(candidate);
        return null;
    }

    static IEnumerable<string> Candidates()
    {
        if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } env)
        {
            yield return env;
            yield return Path.Combine(env, "lib");
            yield break; // an explicit setting is not second-guessed
        }
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null)
        {
            yield return Path.Combine(dir.FullName, ".tools", "llama.cpp", "lib");
            dir = dir.Parent;
        }
    }

    public static bool IsAvailable => FindLibraryDirectory() != null;

    /// <summary>Loads the libraries and initialises the backend once; throws a clear error when they are missing.</summary>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_initialized) return;
            string dir = FindLibraryDirectory() ?? throw new EngineException(
                "llama.cpp libraries not found: run ./build.sh (it installs @node-llama-cpp/linux-x64 into .tools/llama.cpp/lib) "
                + $"or set {DirectoryVariable} to a folder holding libllama.v*.so" +
                (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } e ? $" (it is '{e}')" : ""));
            IntPtr ggmlBase = LoadOne(dir, "libggml-base.so");
            IntPtr ggml = LoadOne(dir, Single(dir, "libggml.v*.so"));
            IntPtr llama = LoadOne(dir, Single(dir, "libllama.v*.so"));

            BackendInit = (delegate* unmanaged[Cdecl]<void>)Export(llama, "llama_backend_init");
            BackendLoadAllFromPath = (delegate* unmanaged[Cdecl]<byte*, void>)Export(ggml, "ggml_backend_load_all_from_path");
            LogSet = (delegate* unmanaged[Cdecl]<delegate* unmanaged[Cdecl]<int, byte*, void*, void>, void*, void>)Export(llama, "llama_log_set");
            ModelDefaultParams = (delegate* unmanaged[Cdecl]<LlamaModelParams>)Export(llama, "llama_model_default_params");
            ContextDefaultParams = (delegate* unmanaged[Cdecl]<LlamaContextParams>)Export(llama, "llama_context_default_params");
            ModelLoadFromFile = (delegate* unmanaged[Cdecl]<byte*, LlamaModelParams, IntPtr>)Export(llama, "llama_model_load_from_file");
            ModelFree = (delegate* unmanaged[Cdecl]<IntPtr, void>)Export(llama, "llama_model_free");
            InitFromModel = (delegate* unmanaged[Cdecl]<IntPtr, LlamaContextParams, IntPtr>)Export(llama, "llama_init_from_model");
            Free = (delegate* unmanaged[Cdecl]<IntPtr, void>)Export(llama, "llama_free");
            ModelGetVocab = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Export(llama, "llama_model_get_vocab");
            VocabNTokens = (delegate* unmanaged[Cdecl]<IntPtr, int>)Export(llama, "llama_vocab_n_tokens");
            VocabBos = (delegate* unmanaged[Cdecl]<IntPtr, int>)Export(llama, "llama_vocab_bos");
            VocabEos = (delegate* unmanaged[Cdecl]<IntPtr, int>)Export(llama, "llama_vocab_eos");
            Tokenize = (delegate* unmanaged[Cdecl]<IntPtr, byte*, int, int*, int, byte, byte, int>)Export(llama, "llama_tokenize");
            BatchInit = (delegate* unmanaged[Cdecl]<int, int, int, LlamaBatch>)Export(llama, "llama_batch_init");
            BatchFree = (delegate* unmanaged[Cdecl]<LlamaBatch, void>)Export(llama, "llama_batch_free");
            Decode = (delegate* unmanaged[Cdecl]<IntPtr, LlamaBatch, int>)Export(llama, "llama_decode");
            GetLogitsIth = (delegate* unmanaged[Cdecl]<IntPtr, int, float*>)Export(llama, "llama_get_logits_ith");
            GetMemory = (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Export(llama, "llama_get_memory");
            MemoryClear = (delegate* unmanaged[Cdecl]<IntPtr, byte, void>)Export(llama, "llama_memory_clear");
            ModelMetaValStr = (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, nuint, int>)Export(llama, "llama_model_meta_val_str");
            ModelNCtxTrain = (delegate* unmanaged[Cdecl]<IntPtr, int>)Export(llama, "llama_model_n_ctx_train");
            QuantizeChunk = (delegate* unmanaged[Cdecl]<GgmlType, float*, void*, long, long, long, float*, nuint>)Export(ggmlBase, "ggml_quantize_chunk");
            GetTypeTraits = (delegate* unmanaged[Cdecl]<GgmlType, void*>)Export(ggmlBase, "ggml_get_type_traits");

            // Route llama.cpp's logging through Engine: quiet by default, the last messages kept for error reports.
            LogSet(&OnLog, null);
            var dirBytes = Encoding.UTF8.GetBytes(dir + "\0");
            fixed (byte* p = dirBytes) BackendLoadAllFromPath(p);
            BackendInit();
            _libraryDirectory = dir;
            _initialized = true;
        }
    }

    static string Single(string dir, string pattern)
    {
        var matches = Directory.GetFiles(dir, pattern);
        if (matches.Length != 1) throw new EngineException($"{dir}: expected one {pattern}, found {matches.Length}");
        return Path.GetFileName(matches[0]);
    }

    static IntPtr LoadOne(string dir, string file)
    {
        string path = Path.Combine(dir, file);
        if (!File.Exists(path)) throw new EngineException($"llama.cpp library {path} is missing (run ./build.sh)");
        try { return NativeLibrary.Load(path); }
        catch (DllNotFoundException e) { throw new EngineException($"cannot load {path}: {e.Message}"); }
    }

    static IntPtr Export(IntPtr library, string name) =>
        NativeLibrary.TryGetExport(library, name, out var p) ? p
            : throw new EngineException($"llama.cpp library lacks '{name}': it is not the version Engine was built against (@node-llama-cpp/linux-x64@3.22.1)");

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    static void OnLog(int level, byte* text, void* userData)
    {
        if (text == null) return;
        string message = Marshal.PtrToStringUTF8((IntPtr)text) ?? "";
        if (Environment.GetEnvironmentVariable("ENGINE_LLAMA_LOG") == "1") Console.Error.Write(message);
        const int warn = 3, error = 4;
        if (level is warn or error)
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
}
