using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Models;

/// <summary>
/// Writes a <see cref="LlamaConfig"/> as the config.json its family's Hugging Face class writes (transformers 4 layout:
/// rope_theta + rope_scaling, which transformers 5 still reads), keys sorted as HF sorts them, so that
/// <c>AutoModelForCausalLM.from_pretrained</c> loads a saved checkpoint and <see cref="HfConfigReader"/> reads it back
/// to the same config.
/// </summary>
public static class HfConfigWriter
{
    public static void Save(LlamaConfig config, string path) =>
        File.WriteAllText(path, ToJson(config).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    public static JsonObject ToJson(LlamaConfig c)
    {
        var family = c.Family;
        var names = ModelFamilies.Of(family);
        var o = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["architectures"] = new JsonArray(names.Architecture),
            ["model_type"] = names.ModelType,
            ["hidden_size"] = c.HiddenSize,
            ["intermediate_size"] = c.IntermediateSize,
            ["num_hidden_layers"] = c.NumLayers,
            ["num_attention_heads"] = c.NumHeads,
            ["num_key_value_heads"] = c.NumKvHeads,
            ["head_dim"] = c.HeadDim,
            ["vocab_size"] = c.VocabSize,
            ["max_position_embeddings"] = c.MaxPositionEmbeddings,
            ["rms_norm_eps"] = c.RmsNormEps,
            ["rope_theta"] = c.RopeTheta,
            ["rope_scaling"] = RopeScaling(c),
            ["tie_word_embeddings"] = c.TieWordEmbeddings,
            ["torch_dtype"] = c.TorchDtype,
            ["attention_dropout"] = 0.0,
        };
        switch (family)
        {
            case ModelFamily.Llama:
                o["hidden_act"] = "silu";
                o["attention_bias"] = false;
                o["mlp_bias"] = false;
                break;
            case ModelFamily.Mistral:
                o["hidden_act"] = "silu";
                o["sliding_window"] = c.SlidingWindow;
                break;
            case ModelFamily.Qwen2:
            case ModelFamily.Qwen3:
                o["hidden_act"] = "silu";
                o["use_sliding_window"] = false;
                o["sliding_window"] = null;
                o["max_window_layers"] = c.NumLayers;
                if (family == ModelFamily.Qwen3) o["attention_bias"] = false;
                break;
            case ModelFamily.Gemma3:
                o["hidden_activation"] = "gelu_pytorch_tanh";
                o["attention_bias"] = false;
                o["query_pre_attn_scalar"] = c.QueryPreAttnScalar ?? c.HeadDim;
                o["sliding_window"] = c.SlidingWindow;
                o["rope_local_base_freq"] = c.LocalRopeTheta ?? c.RopeTheta;
                o["final_logit_softcapping"] = c.FinalLogitSoftcapping;
                o["attn_logit_softcapping"] = null;
                // transformers before 4.53 reads the pattern, later versions layer_types; both say the same.
                o["sliding_window_pattern"] = c.SlidingWindowPattern;
                o["layer_types"] = new JsonArray(Enumerable.Range(0, c.NumLayers)
                    .Select(i => (JsonNode?)(c.AttentionOf(i) == LayerAttention.Full ? "full_attention" : "sliding_attention")).ToArray());
                break;
        }
        if (c.BosTokenId is int b) o["bos_token_id"] = b;
        if (c.EosTokenId is int e) o["eos_token_id"] = e;
        if (c.PadTokenId is int p) o["pad_token_id"] = p;
        var result = new JsonObject();
        foreach (var (k, v) in o) result[k] = v;
        return result;
    }

    static JsonObject? RopeScaling(LlamaConfig c) => c.RopeScaling switch
    {
        RopeScalingKind.None => null,
        RopeScalingKind.Linear => new JsonObject { ["rope_type"] = "linear", ["factor"] = c.RopeScalingFactor },
        RopeScalingKind.Dynamic => new JsonObject { ["rope_type"] = "dynamic", ["factor"] = c.RopeScalingFactor },
        RopeScalingKind.Llama3 => new JsonObject
        {
            ["rope_type"] = "llama3",
            ["factor"] = c.RopeScalingFactor,
            ["low_freq_factor"] = c.RopeLowFreqFactor,
            ["high_freq_factor"] = c.RopeHighFreqFactor,
            ["original_max_position_embeddings"] = c.RopeOriginalMaxPositions,
        },
        _ => throw new ArgumentOutOfRangeException(nameof(c)),
    };
}
