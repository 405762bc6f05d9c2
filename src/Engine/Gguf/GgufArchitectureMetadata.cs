using Engine.Models;

namespace Engine.Gguf;

/// <summary>
/// The <c>{arch}.*</c> hyper-parameters of a GGUF file: written from a <see cref="LlamaConfig"/> the way
/// convert_hf_to_gguf.py writes them for that architecture (TextModel's common keys, LlamaModel's vocab_size and
/// rope.dimension_count, Gemma3Model's window, local RoPE base and soft-cap), and read back the way llama.cpp's
/// loader reads them (its defaults for absent keys included).
/// </summary>
public static class GgufArchitectureMetadata
{
    /// <summary>llama.cpp's hard-wired Gemma 3 values for files that do not carry them.</summary>
    public const int Gemma3Pattern = 6;
    public const double Gemma3LocalRopeBase = 10000.0;

    public static List<KeyValuePair<string, GgufValue>> Build(LlamaConfig c, GgufArchitecture arch, int vocabSize)
    {
        var m = new List<KeyValuePair<string, GgufValue>>();
        string a = arch.Name;
        void Add(string key, GgufValue v) => m.Add(new($"{a}.{key}", v));
        Add("block_count", GgufValue.U32((uint)c.NumLayers));
        Add("context_length", GgufValue.U32((uint)c.MaxPositionEmbeddings));
        Add("embedding_length", GgufValue.U32((uint)c.HiddenSize));
        Add("feed_forward_length", GgufValue.U32((uint)c.IntermediateSize));
        Add("attention.head_count", GgufValue.U32((uint)c.NumHeads));
        Add("attention.head_count_kv", GgufValue.U32((uint)c.NumKvHeads));
        if (c.RopeScaling == RopeScalingKind.Linear)
        {
            Add("rope.scaling.type", GgufValue.Str("linear"));
            Add("rope.scaling.factor", GgufValue.F32((float)c.RopeScalingFactor));
        }
        Add("rope.freq_base", GgufValue.F32((float)c.RopeTheta));
        if (c.LocalRopeTheta is double local) Add("rope.freq_base_swa", GgufValue.F32((float)local));
        Add("attention.layer_norm_rms_epsilon", GgufValue.F32((float)c.RmsNormEps));
        // HF configs of Qwen3 and Gemma 3 always state head_dim; the others only need it when it is not hidden/heads.
        if (arch == GgufArchitectures.Qwen3 || arch == GgufArchitectures.Gemma3 || c.HeadDim * c.NumHeads != c.HiddenSize)
        {
            Add("attention.key_length", GgufValue.U32((uint)c.HeadDim));
            Add("attention.value_length", GgufValue.U32((uint)c.HeadDim));
        }
        if (arch == GgufArchitectures.Llama)
        {
            Add("vocab_size", GgufValue.U32((uint)vocabSize));
            Add("rope.dimension_count", GgufValue.U32((uint)c.HeadDim));
        }
        if (arch == GgufArchitectures.Gemma3)
        {
            if (c.FinalLogitSoftcapping is double cap) Add("final_logit_softcapping", GgufValue.F32((float)cap));
            if (c.SlidingWindow is int window) Add("attention.sliding_window", GgufValue.U32((uint)window));
            // The converter relies on llama.cpp's built-in pattern of 6; another one is stated explicitly.
            if (c.SlidingWindow != null && c.SlidingWindowPattern is int n && n != Gemma3Pattern)
                Add("attention.sliding_window_pattern", GgufValue.U32((uint)n));
        }
        return m;
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
            double llamaCppScalar = c.NumLayers == 62 ? (double)c.HiddenSize / c.NumHeads : c.HeadDim; // llama.cpp's rule (27B)
            if (c.QueryPreAttnScalar is double s && s != llamaCppScalar)
                yield return $"notice: query_pre_attn_scalar {s} is not what llama.cpp assumes for this shape ({llamaCppScalar}): its attention scale will differ";
            if (c.SlidingWindowPattern is int n && n != Gemma3Pattern)
                yield return $"notice: sliding_window_pattern {n} is written as {arch.Name}.attention.sliding_window_pattern, which llama.cpp builds before late 2025 ignore (they assume {Gemma3Pattern})";
        }
    }

    /// <summary>The model config of a file whose general.architecture is <paramref name="arch"/>.</summary>
    public static LlamaConfig ReadConfig(GgufFile file, GgufArchitecture arch)
    {
        string src = file.Source, a = arch.Name;
        int? Int(string key) => GgufModelMetadata.GetInt(file, $"{a}.{key}");
        int Required(string key) => Int(key) ?? throw new EngineException($"{src}: missing {a}.{key}");
        double? Double(string key) => Decimal(file, $"{a}.{key}");

        int hidden = Required("embedding_length");
        int heads = Required("attention.head_count");
        int kvHeads = Int("attention.head_count_kv") ?? heads;
        int headDim = Int("attention.key_length") ?? Int("rope.dimension_count") ?? (heads > 0 ? hidden / heads : 0);
        if (Int("attention.value_length") is int vl && vl != headDim)
            throw new EngineException($"{src}: {a}.attention.value_length {vl} differs from the key length {headDim} (not supported)");
        if (Int("rope.dimension_count") is int rot && rot != headDim)
            throw new EngineException($"{src}: partial rotary embeddings ({a}.rope.dimension_count {rot} < head size {headDim}) are not supported");
        int vocab = file.Metadata.TryGetValue("tokenizer.ggml.tokens", out var tokens) && tokens.Type == GgufValueType.Array
            ? ((Array)tokens.Value).Length
            : Int("vocab_size") ?? (file.TryGetTensor("token_embd.weight", out var emb) && emb.Dims.Length == 2 ? checked((int)emb.Dims[1]) : 0);
        var family = arch.Families[0];
        var config = LlamaConfig.ForFamily(family) with
        {
            HiddenSize = hidden,
            IntermediateSize = Required("feed_forward_length"),
            NumLayers = Required("block_count"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            MaxPositionEmbeddings = Int("context_length") ?? 2048,
            RmsNormEps = Double("attention.layer_norm_rms_epsilon") ?? 1e-5,
            RopeTheta = Double("rope.freq_base") ?? (family == ModelFamily.Gemma3 ? 1_000_000.0 : 10000.0),
            TieWordEmbeddings = !file.TryGetTensor("output.weight", out _),
            BosTokenId = GgufModelMetadata.GetInt(file, "tokenizer.ggml.bos_token_id"),
            EosTokenId = GgufModelMetadata.GetInt(file, "tokenizer.ggml.eos_token_id"),
            PadTokenId = GgufModelMetadata.GetInt(file, "tokenizer.ggml.padding_token_id"),
            TorchDtype = "float32",
        };
        if (!(config.RmsNormEps > 0) || !(config.RopeTheta > 0)) throw new EngineException($"{src}: RMS norm epsilon and RoPE base must be positive");

        string? scalingType = GgufModelMetadata.GetString(file, $"{a}.rope.scaling.type");
        switch (scalingType)
        {
            case null or "none": break;
            case "linear":
                double factor = Double("rope.scaling.factor") ?? throw new EngineException($"{src}: linear RoPE scaling without {a}.rope.scaling.factor");
                if (!(factor > 0)) throw new EngineException($"{src}: {a}.rope.scaling.factor must be positive");
                config = config with { RopeScaling = RopeScalingKind.Linear, RopeScalingFactor = factor };
                break;
            default: throw new EngineException($"{src}: RoPE scaling '{scalingType}' is not supported (supported: linear, and llama3 as rope_freqs)");
        }
        if (file.TryGetTensor(GgufArchitecture.RopeFrequencies, out var freqs))
        {
            if (config.RopeScaling != RopeScalingKind.None)
                throw new EngineException($"{src}: both {a}.rope.scaling.type and a {GgufArchitecture.RopeFrequencies} tensor (not supported)");
            if (freqs.Dims.Length != 1 || freqs.Dims[0] != headDim / 2)
                throw new EngineException($"{src}: {GgufArchitecture.RopeFrequencies} has dims [{string.Join(", ", freqs.Dims)}], expected [{headDim / 2}]");
            config = Llama3RopeFit.FromFactors(config, file.DecodeToArray(freqs), src);
        }
        if (arch == GgufArchitectures.Gemma3) config = ReadGemma3(file, config, Int, Double);
        config.Validate(src);
        return config;
    }

    static LlamaConfig ReadGemma3(GgufFile file, LlamaConfig c, Func<string, int?> Int, Func<string, double?> Double)
    {
        // llama.cpp: no window key means no sliding layers; the pattern and local base default to Gemma 3's.
        int? window = Int("attention.sliding_window") is int w && w > 0 ? w : null;
        int pattern = Gemma3Pattern;
        if (file.Metadata.TryGetValue($"{GgufArchitectures.Gemma3.Name}.attention.sliding_window_pattern", out var p) && p.Type == GgufValueType.Array)
            pattern = PatternOf((Array)p.Value, c.NumLayers, file.Source);
        else if (Int("attention.sliding_window_pattern") is int n) pattern = n;
        return c with
        {
            SlidingWindow = window,
            SlidingWindowPattern = pattern,
            LocalRopeTheta = window is null ? null : Double("rope.freq_base_swa") ?? Gemma3LocalRopeBase,
            // llama.cpp scales queries by head_dim^-½, except for the 27B shape (hidden/heads).
            QueryPreAttnScalar = c.NumLayers == 62 ? (double)c.HiddenSize / c.NumHeads : c.HeadDim,
            FinalLogitSoftcapping = Double("final_logit_softcapping") is double cap && cap != 0 ? cap : null,
        };
    }

    /// <summary>
    /// A number as the decimal it was written from: GGUF stores hyper-parameters as f32, and 1e-5 comes back as
    /// 9.9999997e-6 unless read as the shortest decimal that rounds to the same f32 (what the config.json said).
    /// </summary>
    static double? Decimal(GgufFile file, string key)
    {
        double? d = GgufModelMetadata.GetDouble(file, key);
        if (d is null || !file.Metadata.TryGetValue(key, out var v) || v.Type != GgufValueType.Float32) return d;
        return double.Parse(((float)v.Value).ToString("R", System.Globalization.CultureInfo.InvariantCulture), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>A per-layer bool array (true = sliding) as "every n-th layer full", the only arrangement supported.</summary>
    static int PatternOf(Array sliding, int layers, string source)
    {
        var flags = sliding.Cast<object>().Select(o => o is bool b ? b : throw new EngineException($"{source}: gemma3.attention.sliding_window_pattern must be booleans")).ToArray();
        if (flags.Length != layers) throw new EngineException($"{source}: gemma3.attention.sliding_window_pattern has {flags.Length} entries for {layers} layers");
        int first = Array.IndexOf(flags, false);
        int n = first < 0 ? layers + 1 : first + 1;
        for (int i = 0; i < layers; i++)
            if (flags[i] == ((i + 1) % n == 0))
                throw new EngineException($"{source}: gemma3.attention.sliding_window_pattern is not 'every n-th layer full attention', the only arrangement supported");
        return n;
    }
}
