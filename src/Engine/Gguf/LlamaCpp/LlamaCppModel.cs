using System.Text;
using LLama;
using LLama.Exceptions;
using LLama.Native;

namespace Engine.Gguf.LlamaCpp;

/// <summary>
/// A GGUF model loaded by real llama.cpp (through LLamaSharp's native API) with one context, set up for exact
/// comparisons: F32 K/V cache and flash attention off (the default F16 cache moves logits by about 1e-2), every
/// layer and operation on the CPU.
/// </summary>
public sealed class LlamaCppModel : IDisposable
{
    readonly SafeLlamaModelHandle _model;
    readonly SafeLLamaContextHandle _context;
    bool _disposed;

    public string Path { get; }
    public int VocabSize { get; }
    public int ContextLength { get; }
    public int BosId { get; }
    public int EosId { get; }

    LlamaCppModel(string path, SafeLlamaModelHandle model, SafeLLamaContextHandle context)
    {
        Path = path; _model = model; _context = context;
        ContextLength = (int)context.ContextSize;
        var vocab = model.Vocab;
        VocabSize = vocab.Count;
        BosId = vocab.BOS is LLamaToken bos ? (int)bos : -1;
        EosId = vocab.EOS is LLamaToken eos ? (int)eos : -1;
    }

    /// <summary>Loads <paramref name="path"/>; errors (llama.cpp's own messages included) become EngineExceptions.</summary>
    /// <param name="loraAdapter">a llama.cpp LoRA adapter GGUF applied (scale 1) on top of the model</param>
    public static LlamaCppModel Load(string path, int contextLength = 512, int? threads = null, string? loraAdapter = null)
    {
        if (!File.Exists(path)) throw new EngineException($"{path}: file not found");
        LlamaCppRuntime.EnsureLoaded();
        LlamaCppRuntime.DrainMessages();
        var modelParams = LLamaModelParams.Default();
        modelParams.n_gpu_layers = 0;
        SafeLlamaModelHandle model;
        try { model = SafeLlamaModelHandle.LoadFromFile(path, modelParams); }
        catch (Exception e) when (e is LoadWeightsFailedException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            throw new EngineException($"{path}: llama.cpp could not load the model {Describe()}");
        }

        int n = Math.Max(8, contextLength);
        int t = threads ?? Environment.ProcessorCount;
        var contextParams = LLamaContextParams.Default();
        contextParams.n_ctx = (uint)n;
        contextParams.n_batch = (uint)n;
        contextParams.n_ubatch = (uint)n;
        contextParams.n_seq_max = 1;
        contextParams.n_threads = t;
        contextParams.n_threads_batch = t;
        contextParams.llama_flash_attn_type = LLamaFlashAttentionType.LLAMA_FLASH_ATTENTION_TYPE_DISABLED;
        contextParams.type_k = GGMLType.GGML_TYPE_F32;
        contextParams.type_v = GGMLType.GGML_TYPE_F32;
        contextParams.offload_kqv = false;
        contextParams.op_offload = false;
        contextParams.no_perf = true;
        try
        {
            var context = SafeLLamaContextHandle.Create(model, contextParams);
            if (loraAdapter != null) ApplyAdapter(model, context, loraAdapter);
            return new LlamaCppModel(path, model, context);
        }
        catch (RuntimeError)
        {
            model.Dispose();
            throw new EngineException($"{path}: llama.cpp could not create a context {Describe()}");
        }
    }

    static void ApplyAdapter(SafeLlamaModelHandle model, SafeLLamaContextHandle context, string adapterPath)
    {
        if (!File.Exists(adapterPath)) { context.Dispose(); model.Dispose(); throw new EngineException($"{adapterPath}: file not found"); }
        try
        {
            var adapter = model.LoadLoraFromFile(adapterPath);
            context.SetLoraAdapters(new[] { (adapter, 1.0f) });
        }
        catch (Exception e) when (e is RuntimeError or ArgumentException or InvalidOperationException or LoadWeightsFailedException)
        {
            context.Dispose();
            model.Dispose();
            throw new EngineException($"{adapterPath}: llama.cpp could not apply the LoRA adapter {Describe()}");
        }
    }

    static string Describe() => LlamaCppRuntime.Describe(LlamaCppRuntime.DrainMessages()) is { Length: > 0 } d ? d : "(no message from llama.cpp)";

    /// <summary>A metadata value as llama.cpp reads it (strings and scalars as text), or null when absent.</summary>
    public string? Metadata(string key)
    {
        ThrowIfDisposed();
        // Looked up by index, not with MetadataValueByKey: LLamaSharp 0.30 passes the key to llama.cpp in a pooled
        // buffer without a terminating NUL, so the lookup reads whatever follows and misses now and then.
        for (int i = 0; i < _model.MetadataCount; i++)
        {
            if (_model.MetadataKeyByIndex(i) is not Memory<byte> name || Encoding.UTF8.GetString(name.Span) != key) continue;
            return _model.MetadataValueByIndex(i) is Memory<byte> value ? Encoding.UTF8.GetString(value.Span) : null;
        }
        return null;
    }

    public int TrainingContextLength
    {
        get { ThrowIfDisposed(); return _model.ContextSize; }
    }

    /// <summary>The chat template stored in the file (tokenizer.chat_template), or null.</summary>
    public string? ChatTemplate
    {
        get { ThrowIfDisposed(); return _model.GetTemplate(strict: false); }
    }

    /// <summary>
    /// The conversation rendered by llama.cpp's own chat-template support (llama_chat_apply_template, which
    /// recognises the common templates by their markers rather than running Jinja), or null when the file has no
    /// template or llama.cpp does not recognise it.
    /// </summary>
    public string? ApplyChatTemplate(IReadOnlyList<(string Role, string Content)> messages, bool addAssistant)
    {
        ThrowIfDisposed();
        if (ChatTemplate is null) return null;
        var template = new LLamaTemplate(_model, strict: false) { AddAssistant = addAssistant };
        foreach (var (role, content) in messages) template.Add(role, content);
        try { return Encoding.UTF8.GetString(template.Apply()); }
        catch (MissingTemplateException) { return null; }
    }

    /// <summary>llama.cpp's tokenization of <paramref name="text"/>.</summary>
    public int[] Tokenize(string text, bool addSpecial, bool parseSpecial = false)
    {
        ThrowIfDisposed();
        return _model.Tokenize(text, addSpecial, parseSpecial, Encoding.UTF8).Select(t => (int)t).ToArray();
    }

    /// <summary>Logits for every position of <paramref name="tokens"/>, from an empty cache.</summary>
    public float[][] Logits(IReadOnlyList<int> tokens)
    {
        ThrowIfDisposed();
        if (tokens.Count == 0) return Array.Empty<float[]>();
        if (tokens.Count > ContextLength) throw new EngineException($"{Path}: {tokens.Count} tokens exceed the llama.cpp context of {ContextLength}");
        _context.MemoryClear();
        Decode(tokens, 0, allLogits: true);
        var result = new float[tokens.Count][];
        for (int i = 0; i < tokens.Count; i++) result[i] = LogitsAt(i);
        return result;
    }

    /// <summary>Greedy decoding token by token (argmax, first index on ties), without stopping at EOS.</summary>
    public int[] Greedy(IReadOnlyList<int> prompt, int steps)
    {
        ThrowIfDisposed();
        if (prompt.Count == 0) throw new ArgumentException("the prompt needs at least one token");
        if (prompt.Count + steps > ContextLength) throw new EngineException($"{Path}: {prompt.Count} + {steps} tokens exceed the llama.cpp context of {ContextLength}");
        _context.MemoryClear();
        Decode(prompt, 0, allLogits: false);
        var output = new int[steps];
        int position = prompt.Count;
        for (int s = 0; s < steps; s++)
        {
            int next = ArgMax(LogitsAt(-1));
            output[s] = next;
            if (s + 1 < steps) Decode(new[] { next }, position++, allLogits: false);
        }
        return output;
    }

    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    void Decode(IReadOnlyList<int> tokens, int firstPosition, bool allLogits)
    {
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Count; i++)
        {
            if (tokens[i] < 0 || tokens[i] >= VocabSize) throw new EngineException($"token id {tokens[i]} is outside llama.cpp's vocabulary (0..{VocabSize - 1})");
            batch.Add(tokens[i], firstPosition + i, LLamaSeqId.Zero, allLogits || i == tokens.Count - 1);
        }
        var result = _context.Decode(batch);
        if (result != DecodeResult.Ok) throw new EngineException($"{Path}: llama_decode failed ({result}) {Describe()}");
    }

    float[] LogitsAt(int index)
    {
        try { return _context.GetLogitsIth(index).ToArray(); }
        catch (Exception e) when (e is not EngineException)
        {
            throw new EngineException($"{Path}: llama.cpp returned no logits for output {index} ({e.Message})");
        }
    }

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _context.Dispose();
        _model.Dispose();
    }
}
