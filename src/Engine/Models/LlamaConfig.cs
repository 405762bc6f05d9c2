using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Models;

public enum RopeScalingKind { None, Linear }

/// <summary>
/// The subset of a Hugging Face <c>config.json</c> that defines a Llama-family decoder
/// (LlamaForCausalLM, MistralForCausalLM).
/// </summary>
public sealed record LlamaConfig
{
    public static readonly string[] SupportedArchitectures = { "LlamaForCausalLM", "MistralForCausalLM" };

    public string Architecture { get; init; } = "LlamaForCausalLM";
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumLayers { get; init; }
    public int NumHeads { get; init; }
    public int NumKvHeads { get; init; }
    /// <summary>Per-head dimension; HF allows it to differ from hidden/heads.</summary>
    public int HeadDim { get; init; }
    public int VocabSize { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScalingKind RopeScaling { get; init; } = RopeScalingKind.None;
    public double RopeScalingFactor { get; init; } = 1.0;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Mistral's sliding attention window; null when attention is full.</summary>
    public int? SlidingWindow { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    public int? PadTokenId { get; init; }
    /// <summary>The dtype the checkpoint declares (<c>torch_dtype</c>), e.g. float32 or bfloat16.</summary>
    public string TorchDtype { get; init; } = "float32";

    public bool IsMistral => Architecture == "MistralForCausalLM";
    public int QueryDim => NumHeads * HeadDim;
    public int KvDim => NumKvHeads * HeadDim;

    public long ParameterCount()
    {
        long h = HiddenSize, f = IntermediateSize, v = VocabSize;
        long attn = h * QueryDim + 2 * h * KvDim + QueryDim * h;
        long mlp = 3 * h * f;
        long perLayer = attn + mlp + 2 * h;
        return v * h + NumLayers * perLayer + h + (TieWordEmbeddings ? 0 : v * h);
    }

    public static LlamaConfig Load(string path)
    {
        if (!File.Exists(path)) throw new EngineException($"{path}: config.json not found");
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new EngineException($"{path}: invalid JSON ({e.Message})"); }
        if (root is not JsonObject obj) throw new EngineException($"{path}: expected a JSON object");
        return FromJson(obj, path);
    }

    public static LlamaConfig FromJson(JsonObject obj, string source)
    {
        string arch = obj["architectures"] is JsonArray a && a.Count > 0 ? a[0]?.GetValue<string>() ?? "" : "";
        if (arch == "")
        {
            string? modelType = Str(obj, "model_type", source);
            arch = modelType switch { "llama" => "LlamaForCausalLM", "mistral" => "MistralForCausalLM", _ => "" };
            if (arch == "") throw new EngineException($"{source}: no 'architectures' entry and model_type '{modelType}' is not supported (supported: {string.Join(", ", SupportedArchitectures)})");
        }
        if (!SupportedArchitectures.Contains(arch))
            throw new EngineException($"{source}: unsupported architecture '{arch}' (supported: {string.Join(", ", SupportedArchitectures)})");

        int hidden = RequiredInt(obj, "hidden_size", source);
        int heads = RequiredInt(obj, "num_attention_heads", source);
        int kvHeads = Int(obj, "num_key_value_heads", source) ?? heads;
        int headDim = Int(obj, "head_dim", source) ?? (heads > 0 ? hidden / heads : 0);
        var scalingKind = RopeScalingKind.None;
        double scalingFactor = 1.0;
        if (obj["rope_scaling"] is JsonObject rs)
        {
            string type = Str(rs, "type", source) ?? Str(rs, "rope_type", source) ?? "";
            switch (type)
            {
                case "linear":
                    scalingKind = RopeScalingKind.Linear;
                    scalingFactor = Double(rs, "factor", source) ?? throw new EngineException($"{source}: rope_scaling 'linear' needs a 'factor'");
                    if (!(scalingFactor > 0)) throw new EngineException($"{source}: rope_scaling factor must be positive");
                    break;
                case "default": break;
                default: throw new EngineException($"{source}: rope_scaling type '{type}' is not supported (supported: linear)");
            }
        }
        int? window = null;
        if (arch == "MistralForCausalLM" || obj.ContainsKey("sliding_window"))
        {
            bool useWindow = obj["use_sliding_window"] is not JsonValue uw || uw.GetValueKind() != JsonValueKind.False;
            int? w = Int(obj, "sliding_window", source);
            if (useWindow && w is > 0) window = w;
        }
        var cfg = new LlamaConfig
        {
            Architecture = arch,
            HiddenSize = hidden,
            IntermediateSize = RequiredInt(obj, "intermediate_size", source),
            NumLayers = RequiredInt(obj, "num_hidden_layers", source),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = RequiredInt(obj, "vocab_size", source),
            MaxPositionEmbeddings = Int(obj, "max_position_embeddings", source) ?? 2048,
            RmsNormEps = Double(obj, "rms_norm_eps", source) ?? 1e-6,
            RopeTheta = Double(obj, "rope_theta", source) ?? 10000.0,
            RopeScaling = scalingKind,
            RopeScalingFactor = scalingFactor,
            TieWordEmbeddings = Bool(obj, "tie_word_embeddings", source) ?? false,
            SlidingWindow = window,
            BosTokenId = IdOrFirst(obj, "bos_token_id", source),
            EosTokenId = IdOrFirst(obj, "eos_token_id", source),
            PadTokenId = IdOrFirst(obj, "pad_token_id", source),
            TorchDtype = Str(obj, "torch_dtype", source) ?? "float32",
        };
        string? act = Str(obj, "hidden_act", source);
        if (act != null && act != "silu") throw new EngineException($"{source}: hidden_act '{act}' is not supported (Llama uses silu)");
        cfg.Validate(source);
        return cfg;
    }

    public void Validate(string source)
    {
        void Positive(int v, string name) { if (v <= 0) throw new EngineException($"{source}: {name} must be positive (got {v})"); }
        Positive(HiddenSize, "hidden_size"); Positive(IntermediateSize, "intermediate_size"); Positive(NumLayers, "num_hidden_layers");
        Positive(NumHeads, "num_attention_heads"); Positive(NumKvHeads, "num_key_value_heads"); Positive(HeadDim, "head_dim");
        Positive(VocabSize, "vocab_size"); Positive(MaxPositionEmbeddings, "max_position_embeddings");
        if (NumHeads % NumKvHeads != 0) throw new EngineException($"{source}: num_attention_heads ({NumHeads}) must be a multiple of num_key_value_heads ({NumKvHeads})");
        if (HeadDim % 2 != 0) throw new EngineException($"{source}: head_dim ({HeadDim}) must be even for RoPE");
        // Guards against absurd sizes from corrupt configs before anything is allocated.
        if (ParameterCount() > 200_000_000_000L) throw new EngineException($"{source}: implausible model size ({ParameterCount():N0} parameters)");
    }

    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(Architecture),
            ["model_type"] = IsMistral ? "mistral" : "llama",
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumLayers,
            ["num_attention_heads"] = NumHeads,
            ["num_key_value_heads"] = NumKvHeads,
            ["head_dim"] = HeadDim,
            ["vocab_size"] = VocabSize,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["hidden_act"] = "silu",
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["torch_dtype"] = TorchDtype,
        };
        if (RopeScaling == RopeScalingKind.Linear) o["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = RopeScalingFactor };
        if (SlidingWindow is int w) o["sliding_window"] = w;
        else if (IsMistral) o["sliding_window"] = null;
        if (BosTokenId is int b) o["bos_token_id"] = b;
        if (EosTokenId is int e) o["eos_token_id"] = e;
        if (PadTokenId is int p) o["pad_token_id"] = p;
        return o;
    }

    public void Save(string path) =>
        File.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    static JsonValue? Value(JsonObject o, string key, string source)
    {
        var n = o[key];
        if (n is null) return null;
        if (n is not JsonValue v) throw new EngineException($"{source}: '{key}' must be a scalar");
        return v;
    }

    static int? Int(JsonObject o, string key, string source)
    {
        var v = Value(o, key, source);
        if (v is null) return null;
        if (v.GetValueKind() != JsonValueKind.Number) throw new EngineException($"{source}: '{key}' must be a number");
        double d = v.GetValue<double>();
        if (d != Math.Floor(d) || d < int.MinValue || d > int.MaxValue) throw new EngineException($"{source}: '{key}' must be an integer (got {d})");
        return (int)d;
    }

    static int RequiredInt(JsonObject o, string key, string source) =>
        Int(o, key, source) ?? throw new EngineException($"{source}: missing '{key}'");

    static int? IdOrFirst(JsonObject o, string key, string source)
    {
        // eos_token_id may be a list (Llama 3); the first entry is the primary one.
        if (o[key] is JsonArray arr) return arr.Count > 0 && arr[0] is JsonValue first ? (int)first.GetValue<double>() : null;
        return Int(o, key, source);
    }

    static double? Double(JsonObject o, string key, string source)
    {
        var v = Value(o, key, source);
        if (v is null) return null;
        if (v.GetValueKind() != JsonValueKind.Number) throw new EngineException($"{source}: '{key}' must be a number");
        return v.GetValue<double>();
    }

    static bool? Bool(JsonObject o, string key, string source)
    {
        var v = Value(o, key, source);
        if (v is null) return null;
        return v.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new EngineException($"{source}: '{key}' must be true or false"),
        };
    }

    static string? Str(JsonObject o, string key, string source)
    {
        var v = Value(o, key, source);
        if (v is null) return null;
        if (v.GetValueKind() != JsonValueKind.String) throw new EngineException($"{source}: '{key}' must be a string");
        return v.GetValue<string>();
    }
}
