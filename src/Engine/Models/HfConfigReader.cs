using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Models;

/// <summary>
/// Reads a Hugging Face config.json into a <see cref="LlamaConfig"/> the way each family's HF config class does
/// (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, Gemma3TextConfig): the same defaults for absent keys, the
/// RoPE settings in both layouts (transformers 4's rope_theta + rope_scaling, 5's rope_parameters), and a clear error
/// for any key it does not understand or any value it does not implement.
/// </summary>
public static class HfConfigReader
{
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
        // Nodes built in code hold CLR values (an int stays an int); a round trip through text gives every number the
        // same JSON-element form that a parsed file has.
        if (JsonNode.Parse(obj.ToJsonString()) is not JsonObject parsed) throw new EngineException($"{source}: expected a JSON object");
        var json = new ConfigJson(parsed, source);
        var family = ResolveFamily(json);
        var defaults = LlamaConfig.ForFamily(family);

        int hidden = json.RequiredInt("hidden_size");
        int heads = json.RequiredInt("num_attention_heads");
        int kvHeads = json.Int("num_key_value_heads") ?? (family == ModelFamily.Gemma3 ? 4 : heads);
        int? explicitHeadDim = json.Int("head_dim");
        int headDim = explicitHeadDim ?? family switch
        {
            ModelFamily.Qwen3 => 128,
            ModelFamily.Gemma3 => 256,
            _ => heads > 0 ? hidden / heads : 0,
        };
        var c = defaults with
        {
            HiddenSize = hidden,
            IntermediateSize = json.RequiredInt("intermediate_size"),
            NumLayers = json.RequiredInt("num_hidden_layers"),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = json.RequiredInt("vocab_size"),
            MaxPositionEmbeddings = json.Int("max_position_embeddings") ?? family switch
            {
                ModelFamily.Mistral => 4096 * 32,
                ModelFamily.Qwen2 or ModelFamily.Qwen3 => 32768,
                ModelFamily.Gemma3 => 131072,
                _ => 2048,
            },
            RmsNormEps = json.Double("rms_norm_eps") ?? 1e-6,
            TieWordEmbeddings = json.Bool("tie_word_embeddings") ?? defaults.TieWordEmbeddings,
            BosTokenId = json.IdOrFirst("bos_token_id"),
            EosTokenId = json.IdOrFirst("eos_token_id"),
            PadTokenId = json.IdOrFirst("pad_token_id"),
            TorchDtype = json.Str("torch_dtype") ?? json.Str("dtype") ?? "float32",
        };
        json.Str("dtype");
        json.RequireZero("attention_dropout");
        c = ReadRope(json, c, family);
        c = family switch
        {
            ModelFamily.Llama => ReadLlama(json, c),
            ModelFamily.Mistral => ReadMistral(json, c),
            ModelFamily.Qwen2 => ReadQwen(json, c, family),
            ModelFamily.Qwen3 => ReadQwen(json, c, family),
            ModelFamily.Gemma3 => ReadGemma3(json, c),
            _ => throw new ArgumentOutOfRangeException(nameof(family)),
        };
        json.RejectUnread(family);
        c.Validate(source);
        return c;
    }

    static ModelFamily ResolveFamily(ConfigJson json)
    {
        string? arch = json.FirstArchitecture();
        string? modelType = json.Str("model_type");
        FamilyNames? names;
        if (arch != null)
        {
            names = ModelFamilies.ByArchitecture(arch);
            if (names is null)
            {
                string hint = arch == "Gemma3ForConditionalGeneration"
                    ? " (the multimodal Gemma 3; Engine runs the text-only Gemma3ForCausalLM checkpoints such as gemma-3-1b)" : "";
                throw new EngineException($"{json.Source}: unsupported architecture '{arch}'{hint} (supported: {ModelFamilies.SupportedArchitectures})");
            }
            if (modelType != null && ModelFamilies.ByModelType(modelType) is { } byType && byType.Family != names.Family)
                throw new EngineException($"{json.Source}: model_type '{modelType}' does not match architecture '{arch}' (expected '{names.ModelType}')");
            if (modelType != null && ModelFamilies.ByModelType(modelType) is null)
                throw new EngineException($"{json.Source}: model_type '{modelType}' does not match architecture '{arch}' (expected '{names.ModelType}')");
            return names.Family;
        }
        names = modelType is null ? null : ModelFamilies.ByModelType(modelType);
        return names?.Family ?? throw new EngineException(
            $"{json.Source}: no 'architectures' entry and model_type '{modelType}' is not supported (supported: {string.Join(", ", ModelFamilies.All.Select(f => f.ModelType))})");
    }

    static LlamaConfig ReadLlama(ConfigJson json, LlamaConfig c)
    {
        json.RequireActivation("hidden_act", "silu");
        json.RequireFalse("attention_bias", "q/k/v/o projection biases in a Llama model");
        json.RequireFalse("mlp_bias", "MLP biases");
        return c;
    }

    static LlamaConfig ReadMistral(ConfigJson json, LlamaConfig c)
    {
        json.RequireActivation("hidden_act", "silu");
        // MistralConfig's default window is 4096; an explicit null turns it off.
        int? window = json.Has("sliding_window") ? json.Int("sliding_window") : 4096;
        return c with { SlidingWindow = window is > 0 ? window : null };
    }

    static LlamaConfig ReadQwen(ConfigJson json, LlamaConfig c, ModelFamily family)
    {
        json.RequireActivation("hidden_act", "silu");
        if (family == ModelFamily.Qwen3) json.RequireFalse("attention_bias", "q/k/v/o projection biases in a Qwen3 model");
        else json.RequireFalse("use_mrope", "multimodal RoPE (Qwen2-VL)");
        // Qwen's sliding window applies only with use_sliding_window (to layers from max_window_layers on); the released
        // checkpoints leave it off, and llama.cpp's qwen2/qwen3 do not implement it.
        json.RequireFalse("use_sliding_window", "Qwen's sliding-window attention");
        json.Int("sliding_window");
        json.Int("max_window_layers");
        if (json.StringList("layer_types") is { } types && types.Any(t => t != "full_attention"))
            throw new EngineException($"{json.Source}: layer_types other than full_attention are not supported for {ModelFamilies.Of(family).ModelType}");
        return c;
    }

    static LlamaConfig ReadGemma3(ConfigJson json, LlamaConfig c)
    {
        json.RequireActivation("hidden_activation", "gelu_pytorch_tanh");
        json.RequireFalse("attention_bias", "q/k/v/o projection biases in a Gemma 3 model");
        json.RequireFalse("use_bidirectional_attention", "bidirectional attention (EmbeddingGemma)");
        if (json.Double("attn_logit_softcapping") is double cap)
            throw new EngineException($"{json.Source}: attn_logit_softcapping {cap} is not supported (Gemma 3 checkpoints set it null, and llama.cpp's gemma3 does not implement it)");
        int window = json.Int("sliding_window") ?? 4096;
        int? pattern = json.Int("sliding_window_pattern") ?? json.Int("_sliding_window_pattern");
        if (json.StringList("layer_types") is { } types)
        {
            int fromTypes = PatternOf(types, c.NumLayers, json.Source);
            if (pattern is int p && p != fromTypes)
                throw new EngineException($"{json.Source}: layer_types (every {fromTypes}th layer global) disagrees with sliding_window_pattern {p}");
            pattern = fromTypes;
        }
        return c with
        {
            SlidingWindow = window,
            SlidingWindowPattern = pattern ?? 6,
            QueryPreAttnScalar = json.Double("query_pre_attn_scalar") ?? 256,
            FinalLogitSoftcapping = json.Double("final_logit_softcapping"),
        };
    }

    /// <summary>The n of "every n-th layer is full": layer_types must be that regular shape (Gemma 3's rule).</summary>
    static int PatternOf(IReadOnlyList<string> types, int layers, string source)
    {
        if (types.Count != layers) throw new EngineException($"{source}: layer_types has {types.Count} entries for {layers} layers");
        foreach (var t in types)
            if (t is not ("full_attention" or "sliding_attention"))
                throw new EngineException($"{source}: layer_types entry '{t}' is not supported (full_attention, sliding_attention)");
        int first = types.ToList().IndexOf("full_attention");
        int n = first < 0 ? layers + 1 : first + 1; // no full layer: a pattern longer than the model
        for (int i = 0; i < layers; i++)
            if ((types[i] == "full_attention") != ((i + 1) % n == 0))
                throw new EngineException($"{source}: layer_types is not 'every n-th layer full attention', the only arrangement supported");
        return n;
    }

    /// <summary>
    /// RoPE base and scaling: transformers 4 writes rope_theta + rope_scaling (+ Gemma's rope_local_base_freq);
    /// transformers 5 writes rope_parameters, per layer type for Gemma 3.
    /// </summary>
    static LlamaConfig ReadRope(ConfigJson json, LlamaConfig c, ModelFamily family)
    {
        double defaultTheta = family == ModelFamily.Gemma3 ? 1_000_000.0 : 10000.0;
        JsonObject? global = json.Object("rope_scaling");
        JsonObject? local = null;
        double theta = json.Double("rope_theta") ?? defaultTheta;
        double? localTheta = family == ModelFamily.Gemma3 ? json.Double("rope_local_base_freq") ?? 10000.0 : null;
        if (json.Object("rope_parameters") is { } parameters)
        {
            if (parameters.ContainsKey("full_attention") || parameters.ContainsKey("sliding_attention"))
            {
                if (parameters.Select(kv => kv.Key).FirstOrDefault(k => k is not ("full_attention" or "sliding_attention")) is string other)
                    throw new EngineException($"{json.Source}: unknown key '{other}' in rope_parameters beside the per-layer-type entries");
                global = parameters["full_attention"] as JsonObject;
                local = parameters["sliding_attention"] as JsonObject;
                if (local != null && family != ModelFamily.Gemma3)
                    throw new EngineException($"{json.Source}: rope_parameters for sliding_attention layers are only supported for Gemma 3");
            }
            else global = parameters;
        }
        if (global != null)
        {
            var rope = new RopeJson(global, $"{json.Source}: rope_scaling");
            theta = rope.Theta ?? theta;
            c = rope.ApplyScaling(c);
        }
        if (local != null)
        {
            var rope = new RopeJson(local, $"{json.Source}: rope_parameters.sliding_attention");
            localTheta = rope.Theta ?? localTheta;
            if (rope.ApplyScaling(c) != c) throw new EngineException($"{json.Source}: RoPE scaling of sliding-window layers is not supported");
        }
        return c with { RopeTheta = theta, LocalRopeTheta = localTheta };
    }

    /// <summary>One RoPE settings object (rope_scaling or a rope_parameters entry).</summary>
    sealed class RopeJson
    {
        readonly ConfigJson _json;
        public double? Theta { get; }

        public RopeJson(JsonObject obj, string source)
        {
            _json = new ConfigJson(obj, source);
            Theta = _json.Double("rope_theta");
        }

        public LlamaConfig ApplyScaling(LlamaConfig c)
        {
            string type = _json.Str("rope_type") ?? _json.Str("type") ?? "default";
            _json.Str("type");
            if (_json.Double("partial_rotary_factor") is double prf && prf != 1.0)
                throw new EngineException($"{_json.Source}: partial_rotary_factor {prf} is not supported");
            LlamaConfig result;
            switch (type)
            {
                case "default":
                    result = c;
                    break;
                case "linear":
                case "dynamic":
                    result = c with
                    {
                        RopeScaling = type == "linear" ? RopeScalingKind.Linear : RopeScalingKind.Dynamic,
                        RopeScalingFactor = _json.Double("factor") ?? throw new EngineException($"{_json.Source}: '{type}' needs a 'factor'"),
                    };
                    break;
                case "llama3":
                    result = c with
                    {
                        RopeScaling = RopeScalingKind.Llama3,
                        RopeScalingFactor = _json.Double("factor") ?? throw new EngineException($"{_json.Source}: 'llama3' needs a 'factor'"),
                        RopeLowFreqFactor = _json.Double("low_freq_factor") ?? throw new EngineException($"{_json.Source}: 'llama3' needs 'low_freq_factor'"),
                        RopeHighFreqFactor = _json.Double("high_freq_factor") ?? throw new EngineException($"{_json.Source}: 'llama3' needs 'high_freq_factor'"),
                        RopeOriginalMaxPositions = _json.Int("original_max_position_embeddings")
                            ?? throw new EngineException($"{_json.Source}: 'llama3' needs 'original_max_position_embeddings'"),
                    };
                    break;
                default:
                    throw new EngineException($"{_json.Source}: RoPE type '{type}' is not supported (supported: default, linear, dynamic, llama3)");
            }
            if (result.RopeScalingFactor is var f && !(f > 0)) throw new EngineException($"{_json.Source}: factor must be positive (got {f})");
            if (type == "dynamic") _json.Int("original_max_position_embeddings"); // HF's dynamic NTK keys on max_position_embeddings
            _json.RejectUnread(null);
            return result;
        }
    }
}
