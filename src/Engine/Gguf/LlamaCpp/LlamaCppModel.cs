using System.Text;

namespace Engine.Gguf.LlamaCpp;

/// <summary>
/// A GGUF model loaded by real llama.cpp with one context, set up for exact comparisons: F32 K/V cache and
/// flash attention off (the default F16 cache moves logits by about 1e-2). CPU only.
/// </summary>
public sealed unsafe class LlamaCppModel : IDisposable
{
    IntPtr _model, _context, _vocab;
    public string Path { get; }
    public int VocabSize { get; }
    public int ContextLength { get; }
    public int BosId { get; }
    public int EosId { get; }

    LlamaCppModel(string path, IntPtr model, IntPtr context, int contextLength)
    {
        Path = path; _model = model; _context = context; ContextLength = contextLength;
        _vocab = LlamaCppLibrary.ModelGetVocab(model);
        VocabSize = LlamaCppLibrary.VocabNTokens(_vocab);
        BosId = LlamaCppLibrary.VocabBos(_vocab);
        EosId = LlamaCppLibrary.VocabEos(_vocab);
    }

    /// <summary>Loads <paramref name="path"/>; errors (llama.cpp's own messages included) become EngineExceptions.</summary>
    public static LlamaCppModel Load(string path, int contextLength = 512, int? threads = null)
    {
        if (!File.Exists(path)) throw new EngineException($"{path}: file not found");
        LlamaCppLibrary.EnsureLoaded();
        LlamaCppLibrary.DrainMessages();
        var mp = LlamaCppLibrary.ModelDefaultParams();
        mp.NGpuLayers = 0;
        IntPtr model;
        fixed (byte* p = Encoding.UTF8.GetBytes(path + "\0")) model = LlamaCppLibrary.ModelLoadFromFile(p, mp);
        if (model == IntPtr.Zero)
            throw new EngineException($"{path}: llama.cpp could not load the model ({Describe(LlamaCppLibrary.DrainMessages())})");

        var cp = LlamaCppLibrary.ContextDefaultParams();
        int n = Math.Max(8, contextLength);
        cp.NCtx = (uint)n;
        cp.NBatch = (uint)n;
        cp.NUbatch = (uint)n;
        cp.NSeqMax = 1;
        int t = threads ?? Environment.ProcessorCount;
        cp.NThreads = t;
        cp.NThreadsBatch = t;
        cp.FlashAttnType = LlamaContextParams.FlashAttentionDisabled;
        cp.TypeK = GgmlType.F32;
        cp.TypeV = GgmlType.F32;
        cp.NoPerf = true;
        IntPtr context = LlamaCppLibrary.InitFromModel(model, cp);
        if (context == IntPtr.Zero)
        {
            LlamaCppLibrary.ModelFree(model);
            throw new EngineException($"{path}: llama.cpp could not create a context ({Describe(LlamaCppLibrary.DrainMessages())})");
        }
        return new LlamaCppModel(path, model, context, n);
    }

    static string Describe(string messages) => messages.Length > 0 ? messages : "no message from llama.cpp";

    /// <summary>A metadata value as llama.cpp reads it (strings and scalars), or null when absent.</summary>
    public string? Metadata(string key)
    {
        ThrowIfDisposed();
        var buffer = new byte[4096];
        int n;
        fixed (byte* k = Encoding.UTF8.GetBytes(key + "\0"))
        fixed (byte* b = buffer)
            n = LlamaCppLibrary.ModelMetaValStr(_model, k, b, (nuint)buffer.Length);
        return n < 0 ? null : Encoding.UTF8.GetString(buffer, 0, Math.Min(n, buffer.Length - 1));
    }

    public int TrainingContextLength => LlamaCppLibrary.ModelNCtxTrain(_model);

    /// <summary>llama.cpp's tokenization of <paramref name="text"/>.</summary>
    public int[] Tokenize(string text, bool addSpecial, bool parseSpecial = false)
    {
        ThrowIfDisposed();
        var bytes = Encoding.UTF8.GetBytes(text);
        var tokens = new int[bytes.Length + 8];
        int n;
        fixed (byte* p = bytes)
        fixed (int* t = tokens)
        {
            n = LlamaCppLibrary.Tokenize(_vocab, p, bytes.Length, t, tokens.Length, (byte)(addSpecial ? 1 : 0), (byte)(parseSpecial ? 1 : 0));
            if (n < 0)
            {
                tokens = new int[-n];
                fixed (int* t2 = tokens)
                    n = LlamaCppLibrary.Tokenize(_vocab, p, bytes.Length, t2, tokens.Length, (byte)(addSpecial ? 1 : 0), (byte)(parseSpecial ? 1 : 0));
            }
        }
        if (n < 0) throw new EngineException($"{Path}: llama.cpp could not tokenize the text");
        return tokens.AsSpan(0, n).ToArray();
    }

    /// <summary>Logits for every position of <paramref name="tokens"/>, from an empty cache.</summary>
    public float[][] Logits(IReadOnlyList<int> tokens)
    {
        ThrowIfDisposed();
        if (tokens.Count == 0) return Array.Empty<float[]>();
        if (tokens.Count > ContextLength) throw new EngineException($"{Path}: {tokens.Count} tokens exceed the llama.cpp context of {ContextLength}");
        ClearCache();
        DecodeBatch(tokens, 0, allLogits: true);
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
        ClearCache();
        DecodeBatch(prompt, 0, allLogits: false);
        var output = new int[steps];
        int position = prompt.Count;
        for (int s = 0; s < steps; s++)
        {
            int next = ArgMax(LogitsAt(-1));
            output[s] = next;
            if (s + 1 < steps) DecodeBatch(new[] { next }, position++, allLogits: false);
        }
        return output;
    }

    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    void ClearCache() => LlamaCppLibrary.MemoryClear(LlamaCppLibrary.GetMemory(_context), 1);

    void DecodeBatch(IReadOnlyList<int> tokens, int firstPosition, bool allLogits)
    {
        var batch = LlamaCppLibrary.BatchInit(tokens.Count, 0, 1);
        try
        {
            for (int i = 0; i < tokens.Count; i++)
            {
                if (tokens[i] < 0 || tokens[i] >= VocabSize) throw new EngineException($"token id {tokens[i]} is outside llama.cpp's vocabulary (0..{VocabSize - 1})");
                batch.Token[i] = tokens[i];
                batch.Pos[i] = firstPosition + i;
                batch.NSeqId[i] = 1;
                batch.SeqId[i][0] = 0;
                batch.Logits[i] = (sbyte)(allLogits || i == tokens.Count - 1 ? 1 : 0);
            }
            batch.NTokens = tokens.Count;
            int rc = LlamaCppLibrary.Decode(_context, batch);
            if (rc != 0) throw new EngineException($"{Path}: llama_decode failed with code {rc} ({Describe(LlamaCppLibrary.DrainMessages())})");
        }
        finally
        {
            LlamaCppLibrary.BatchFree(batch);
        }
    }

    float[] LogitsAt(int index)
    {
        float* p = LlamaCppLibrary.GetLogitsIth(_context, index);
        if (p == null) throw new EngineException($"{Path}: llama.cpp returned no logits for output {index}");
        return new ReadOnlySpan<float>(p, VocabSize).ToArray();
    }

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_model == IntPtr.Zero, this);

    public void Dispose()
    {
        if (_context != IntPtr.Zero) { LlamaCppLibrary.Free(_context); _context = IntPtr.Zero; }
        if (_model != IntPtr.Zero) { LlamaCppLibrary.ModelFree(_model); _model = IntPtr.Zero; }
    }
}
