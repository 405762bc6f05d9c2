using System.Globalization;
using Engine.Models;
using static Engine.Gguf.GgufKeys;

namespace Engine.Gguf;

/// <summary>
/// The <c>{arch}.*</c> hyper-parameters of a GGUF file, through the <see cref="GgufKeys"/> table: written from a
/// <see cref="LlamaConfig"/> the way convert_hf_to_gguf.py writes them for that architecture (TextModel's common keys,
/// LlamaModel's vocab_size and rope.dimension_count, Gemma3Model's window, local RoPE base and soft-cap), and read back
/// the way llama.cpp's loader reads them (its defaults for absent keys included).
/// </summary>
public static class GgufArchitectureMetadata
{
    /// <summary>llama.cpp's hard-wired Gemma 3 values for files that do not carry them.</summary>
    public const int Gemma3Pattern = 6;
    public const double Gemma3LocalRopeBase = 10000.0;

    public static void Build(GgufMetadataBuilder m, LlamaConfig c, GgufArchitecture arch, int vocabSize)
    {
        m.Add(BlockCount, c.NumLayers);
        m.Add(ContextLength, c.MaxPositionEmbeddings);
        m.Add(EmbeddingLength, c.HiddenSize);
        m.Add(FeedForwardLength, c.IntermediateSize);
        m.Add(HeadCount, c.NumHeads);
        m.Add(HeadCountKv, c.NumKvHeads);
        if (c.RopeScaling == RopeScalingKind.Linear)
        {
            m.Add(RopeScalingType, "linear");
            m.Add(RopeScalingFactor, (float)c.RopeScalingFactor);
        }
        m.Add(RopeFreqBase, (float)c.RopeTheta);
        if (c.LocalRopeTheta is double local) m.Add(RopeFreqBaseSwa, (float)local);
        m.Add(RmsNormEpsilon, (float)c.RmsNormEps);
        // HF configs of Qwen3 and Gemma 3 always state head_dim; the others only need it when it is not hidden/heads.
        if (arch == GgufArchitectures.Qwen3 || arch == GgufArchitectures.Gemma3 || c.HeadDim * c.NumHeads != c.HiddenSize)
        {
            m.Add(KeyLength, c.HeadDim);
            m.Add(ValueLength, c.HeadDim);
        }
        if (arch == GgufArchitectures.Llama)
        {
            m.Add(VocabSize, vocabSize);
            m.Add(RopeDimensionCount, c.HeadDim);
        }
        if (arch == GgufArchitectures.Gemma3)
        {
            if (c.FinalLogitSoftcapping is double cap) m.Add(FinalLogitSoftcapping, (float)cap);
            if (c.SlidingWindow is int window) m.Add(SlidingWindow, window);
            // The converter relies on llama.cpp's built-in pattern of 6; another one is stated explicitly.
            if (c.SlidingWindow != null && c.SlidingWindowPattern is int n && n != Gemma3Pattern) m.Add(SlidingWindowPattern, n);
        }
    }

    /// <summary>What llama.cpp will compute differently from the model, for the export's notices (empty when nothing).</summary>
    public static IEnumerable<string> Differences(LlamaConfig c, GgufArchitecture arch)
    {
        if (arch == GgufArchitectures.Llama && c.SlidingWindow is int window)
            yield return $"notice: this model uses a sliding attention window of {window} tokens, which the llama architecture in GGUF does not represent: llama.cpp attends over the full context, so outputs agree with this model only for sequences up to {window} tokens";
        if (c.RopeScaling == RopeScalingKind.Dynamic)
            yield return $"notice: dynamic NTK RoPE scaling has no GGUF form (llama.cpp's converter drops it): llama.cpp agrees with this model only for sequences up to max_position_embeddings ({c.MaxPositionEmbeddings}) tokens";
        if (arch == GgufArchitectures.Gemma3)
        {
            double llamaCppScalar = LlamaCppQueryScalar(c);
            if (c.QueryPreAttnScalar is double s && s != llamaCppScalar)
                yield return $"notice: query_pre_attn_scalar {s} is not what llama.cpp assumes for this shape ({llamaCppScalar}): its attention scale will differ";
            if (c.SlidingWindowPattern is int n && n != Gemma3Pattern)
                yield return $"notice: sliding_window_pattern {n} is written as {SlidingWindowPattern.Name(arch.Name)}, which llama.cpp builds before late 2025 ignore (they assume {Gemma3Pattern})";
        }
    }

    /// <summary>llama.cpp scales Gemma 3's queries by head_dim^-½, except for the 27B shape (62 layers: hidden/heads).</summary>
    static double LlamaCppQueryScalar(LlamaConfig c) => c.NumLayers == 62 ? (double)c.HiddenSize / c.NumHeads : c.HeadDim;

    /// <summary>The model config of a file whose general.architecture is <paramref name="arch"/>.</summary>
    public static LlamaConfig ReadConfig(GgufFile file, GgufArchitecture arch)
    {
        string src = file.Source, a = arch.Name;
        int hidden = file.RequireInt(EmbeddingLength, a);
        int heads = file.RequireInt(HeadCount, a);
        int kvHeads = file.GetInt(HeadCountKv, a) ?? heads;
        int headDim = file.GetInt(KeyLength, a) ?? file.GetInt(RopeDimensionCount, a) ?? (heads > 0 ? hidden / heads : 0);
        if (file.GetInt(ValueLength, a) is int vl && vl != headDim)
            throw new EngineException($"{src}: {ValueLength.Name(a)} {vl} differs from the key length {headDim} (not supported)");
        if (file.GetInt(RopeDimensionCount, a) is int rot && rot != headDim)
            throw new EngineException($"{src}: partial rotary embeddings ({RopeDimensionCount.Name(a)} {rot} < head size {headDim}) are not supported");
        int vocab = file.Get(Tokens) is { Type: GgufValueType.Array } tokens
            ? ((Array)tokens.Value).Length
            : file.GetInt(VocabSize, a)
              ?? (file.TryGetTensor("token_embd.weight", out var emb) && emb.Dims.Length == 2 ? checked((int)emb.Dims[1]) : 0);
        var family = arch.Families[0];
        var config = LlamaConfig.ForFamily(family) with
        {
            HiddenSize = hidden,
            IntermediateSize = file.RequireInt(FeedForwardLength, a),
            NumLayers = file.RequireInt(BlockCount, a),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            MaxPositionEmbeddings = file.GetInt(ContextLength, a) ?? 2048,
            RmsNormEps = Decimal(file, RmsNormEpsilon, a) ?? 1e-5,
            RopeTheta = Decimal(file, RopeFreqBase, a) ?? (family == ModelFamily.Gemma3 ? 1_000_000.0 : 10000.0),
            TieWordEmbeddings = !file.TryGetTensor("output.weight", out _),
            BosTokenId = file.GetInt(BosTokenId),
            EosTokenId = file.GetInt(EosTokenId),
            PadTokenId = file.GetInt(PaddingTokenId),
            TorchDtype = "float32",
        };
        if (!(config.RmsNormEps > 0) || !(config.RopeTheta > 0)) throw new EngineException($"{src}: RMS norm epsilon and RoPE base must be positive");

        string? scalingType = file.GetString(RopeScalingType, a);
        switch (scalingType)
        {
            case null or "none": break;
            case "linear":
                double factor = Decimal(file, RopeScalingFactor, a) ?? throw new EngineException($"{src}: linear RoPE scaling without {RopeScalingFactor.Name(a)}");
                if (!(factor > 0)) throw new EngineException($"{src}: {RopeScalingFactor.Name(a)} must be positive");
                config = config with { RopeScaling = RopeScalingKind.Linear, RopeScalingFactor = factor };
                break;
            default: throw new EngineException($"{src}: RoPE scaling '{scalingType}' is not supported (supported: linear, and llama3 as rope_freqs)");
        }
        if (file.TryGetTensor(GgufArchitecture.RopeFrequencies, out var freqs))
        {
            if (config.RopeScaling != RopeScalingKind.None)
                throw new EngineException($"{src}: both {RopeScalingType.Name(a)} and a {GgufArchitecture.RopeFrequencies} tensor (not supported)");
            if (freqs.Dims.Length != 1 || freqs.Dims[0] != headDim / 2)
                throw new EngineException($"{src}: {GgufArchitecture.RopeFrequencies} has dims [{string.Join(", ", freqs.Dims)}], expected [{headDim / 2}]");
            config = Llama3RopeFit.FromFactors(config, file.DecodeToArray(freqs), src);
        }
        if (arch == GgufArchitectures.Gemma3) config = ReadGemma3(file, config, a);
        config.Validate(src);
        return config;
    }

    static LlamaConfig ReadGemma3(GgufFile file, LlamaConfig c, string a)
    {
        // llama.cpp: no window key means no sliding layers; the pattern and local base default to Gemma 3's.
        int? window = file.GetInt(SlidingWindow, a) is int w && w > 0 ? w : null;
        int pattern = file.Get(SlidingWindowPattern, a) is { Type: GgufValueType.Array } flags
            ? PatternOf((Array)flags.Value, c.NumLayers, $"{file.Source}: {SlidingWindowPattern.Name(a)}")
            : file.GetInt(SlidingWindowPattern, a) ?? Gemma3Pattern;
        var withWindow = c with { SlidingWindow = window, SlidingWindowPattern = pattern };
        return withWindow with
        {
            LocalRopeTheta = window is null ? null : Decimal(file, RopeFreqBaseSwa, a) ?? Gemma3LocalRopeBase,
            QueryPreAttnScalar = LlamaCppQueryScalar(withWindow),
            FinalLogitSoftcapping = Decimal(file, FinalLogitSoftcapping, a) is double cap && cap != 0 ? cap : null,
        };
    }

    /// <summary>
    /// A number as the decimal it was written from: GGUF stores hyper-parameters as f32, and 1e-5 comes back as
    /// 9.9999997e-6 unless read as the shortest decimal that rounds to the same f32 (what the config.json said).
    /// </summary>
    static double? Decimal(GgufFile file, GgufKey key, string arch)
    {
        double? d = file.GetDouble(key, arch);
        if (d is null || file.Get(key, arch) is not { Type: GgufValueType.Float32 } v) return d;
        return double.Parse(((float)v.Value).ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    /// <summary>A per-layer bool array (true = sliding) as "every n-th layer full", the only arrangement supported.</summary>
    /// <param name="what">the file and key, for errors</param>
    static int PatternOf(Array sliding, int layers, string what)
    {
        var flags = sliding.Cast<object>().Select(o => o is bool b ? b : throw new EngineException($"{what} must be booleans")).ToArray();
        if (flags.Length != layers) throw new EngineException($"{what} has {flags.Length} entries for {layers} layers");
        int first = Array.IndexOf(flags, false);
        int n = first < 0 ? layers + 1 : first + 1;
        for (int i = 0; i < layers; i++)
            if (flags[i] == ((i + 1) % n == 0))
                throw new EngineException($"{what} is not 'every n-th layer full attention', the only arrangement supported");
        return n;
    }
}
