using Engine.Models;

namespace Engine.Gguf;

/// <summary>
/// The llama-architecture metadata: written from a <see cref="LlamaConfig"/> on export, read back into one on import.
/// </summary>
public static class GgufModelMetadata
{
    public const string Architecture = "llama";

    /// <summary>Metadata entries describing the model (general.* and llama.*), in the order llama.cpp's converter writes them.</summary>
    public static List<KeyValuePair<string, GgufValue>> Build(LlamaConfig config, string name, GgufExportType fileType, bool anyQuantized, int vocabSize)
    {
        var m = new List<KeyValuePair<string, GgufValue>>();
        void Add(string key, GgufValue v) => m.Add(new(key, v));
        Add("general.architecture", GgufValue.Str(Architecture));
        Add("general.name", GgufValue.Str(name));
        Add("general.file_type", GgufValue.U32(GgufExportTypes.FileType(fileType)));
        if (anyQuantized) Add("general.quantization_version", GgufValue.U32(2));
        Add("llama.vocab_size", GgufValue.U32((uint)vocabSize));
        Add("llama.context_length", GgufValue.U32((uint)config.MaxPositionEmbeddings));
        Add("llama.embedding_length", GgufValue.U32((uint)config.HiddenSize));
        Add("llama.block_count", GgufValue.U32((uint)config.NumLayers));
        Add("llama.feed_forward_length", GgufValue.U32((uint)config.IntermediateSize));
        Add("llama.rope.dimension_count", GgufValue.U32((uint)config.HeadDim));
        Add("llama.attention.head_count", GgufValue.U32((uint)config.NumHeads));
        Add("llama.attention.head_count_kv", GgufValue.U32((uint)config.NumKvHeads));
        if (config.HeadDim * config.NumHeads != config.HiddenSize)
        {
            Add("llama.attention.key_length", GgufValue.U32((uint)config.HeadDim));
            Add("llama.attention.value_length", GgufValue.U32((uint)config.HeadDim));
        }
        Add("llama.attention.layer_norm_rms_epsilon", GgufValue.F32((float)config.RmsNormEps));
        Add("llama.rope.freq_base", GgufValue.F32((float)config.RopeTheta));
        if (config.RopeScaling == RopeScalingKind.Linear)
        {
            Add("llama.rope.scaling.type", GgufValue.Str("linear"));
            Add("llama.rope.scaling.factor", GgufValue.F32((float)config.RopeScalingFactor));
        }
        return m;
    }

    /// <summary>Builds the model config from a GGUF file's metadata and tensor shapes.</summary>
    public static LlamaConfig ReadConfig(GgufFile file)
    {
        string src = file.Source;
        string arch = GetString(file, "general.architecture") ?? throw new EngineException($"{src}: missing general.architecture");
        if (arch != Architecture)
            throw new EngineException($"{src}: unsupported architecture '{arch}' (supported: {Architecture})");
        int hidden = RequiredInt(file, "llama.embedding_length");
        int heads = RequiredInt(file, "llama.attention.head_count");
        int kvHeads = GetInt(file, "llama.attention.head_count_kv") ?? heads;
        int headDim = GetInt(file, "llama.attention.key_length") ?? GetInt(file, "llama.rope.dimension_count") ?? (heads > 0 ? hidden / heads : 0);
        if (GetInt(file, "llama.attention.value_length") is int vl && vl != headDim)
            throw new EngineException($"{src}: llama.attention.value_length {vl} differs from the key length {headDim} (not supported)");
        if (GetInt(file, "llama.rope.dimension_count") is int rot && rot != headDim)
            throw new EngineException($"{src}: partial rotary embeddings (llama.rope.dimension_count {rot} < head size {headDim}) are not supported");
        int vocab = file.Metadata.TryGetValue("tokenizer.ggml.tokens", out var tokens) && tokens.Type == GgufValueType.Array
            ? ((Array)tokens.Value).Length
            : GetInt(file, "llama.vocab_size")
              ?? (file.TryGetTensor("token_embd.weight", out var emb) && emb.Dims.Length == 2 ? checked((int)emb.Dims[1]) : 0);
        var scaling = RopeScalingKind.None;
        double factor = 1;
        string? scalingType = GetString(file, "llama.rope.scaling.type");
        switch (scalingType)
        {
            case null or "none": break;
            case "linear":
                scaling = RopeScalingKind.Linear;
                factor = GetDouble(file, "llama.rope.scaling.factor") ?? throw new EngineException($"{src}: linear RoPE scaling without llama.rope.scaling.factor");
                if (!(factor > 0)) throw new EngineException($"{src}: llama.rope.scaling.factor must be positive");
                break;
            default: throw new EngineException($"{src}: RoPE scaling '{scalingType}' is not supported (supported: linear)");
        }
        double eps = GetDouble(file, "llama.attention.layer_norm_rms_epsilon") ?? 1e-5;
        double theta = GetDouble(file, "llama.rope.freq_base") ?? 10000.0;
        if (!(eps > 0) || !(theta > 0)) throw new EngineException($"{src}: RMS norm epsilon and RoPE base must be positive");
        var config = new LlamaConfig
        {
            Architecture = "LlamaForCausalLM",
            HiddenSize = hidden,
            IntermediateSize = RequiredInt(file, "llama.feed_forward_length"),
            NumLayers = RequiredInt(file, "llama.block_count"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            MaxPositionEmbeddings = GetInt(file, "llama.context_length") ?? 2048,
            RmsNormEps = eps,
            RopeTheta = theta,
            RopeScaling = scaling,
            RopeScalingFactor = factor,
            TieWordEmbeddings = !file.TryGetTensor("output.weight", out _),
            BosTokenId = GetInt(file, "tokenizer.ggml.bos_token_id"),
            EosTokenId = GetInt(file, "tokenizer.ggml.eos_token_id"),
            PadTokenId = GetInt(file, "tokenizer.ggml.padding_token_id"),
            TorchDtype = "float32",
        };
        config.Validate(src);
        return config;
    }

    static GgufValue? Get(GgufFile f, string key) => f.Metadata.TryGetValue(key, out var v) ? v : null;

    public static string? GetString(GgufFile f, string key)
    {
        var v = Get(f, key);
        if (v is null) return null;
        return v.Type == GgufValueType.String ? (string)v.Value : throw new EngineException($"{f.Source}: {key} must be a string (got {v.Type})");
    }

    /// <summary>An integer key that must fit an int; the u32 "none" marker (0xFFFFFFFF, written for absent ids) reads as null.</summary>
    public static int? GetInt(GgufFile f, string key)
    {
        var v = Get(f, key);
        if (v is null) return null;
        long? n = v.IsInteger ? v.AsInt64() : null;
        if (n is null) throw new EngineException($"{f.Source}: {key} must be an integer (got {v.Type})");
        if (n == uint.MaxValue || n == -1) return null;
        if (n < 0 || n > int.MaxValue) throw new EngineException($"{f.Source}: {key} = {n} is out of range");
        return (int)n;
    }

    static int RequiredInt(GgufFile f, string key) => GetInt(f, key) ?? throw new EngineException($"{f.Source}: missing {key}");

    public static double? GetDouble(GgufFile f, string key)
    {
        var v = Get(f, key);
        if (v is null) return null;
        return v.AsDouble() ?? throw new EngineException($"{f.Source}: {key} must be a number (got {v.Type})");
    }

    public static bool? GetBool(GgufFile f, string key)
    {
        var v = Get(f, key);
        if (v is null) return null;
        return v.Type == GgufValueType.Bool ? (bool)v.Value : throw new EngineException($"{f.Source}: {key} must be a boolean (got {v.Type})");
    }
}
