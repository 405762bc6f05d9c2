using System.Globalization;
using System.Text.Json.Nodes;

namespace Engine.Models;

/// <summary>A config's architecture as `info` and `plan` report it: labelled text lines, or JSON fields.</summary>
public static class ModelSummary
{
    public static JsonObject ToJson(LlamaConfig c)
    {
        var names = ModelFamilies.Of(c.Family);
        var rope = new JsonObject { ["theta"] = c.RopeTheta, ["scaling"] = ScalingName(c.RopeScaling) };
        if (c.RopeScaling != RopeScalingKind.None) rope["factor"] = c.RopeScalingFactor;
        if (c.RopeScaling == RopeScalingKind.Llama3)
        {
            rope["low_freq_factor"] = c.RopeLowFreqFactor;
            rope["high_freq_factor"] = c.RopeHighFreqFactor;
            rope["original_max_position_embeddings"] = c.RopeOriginalMaxPositions;
        }
        if (c.LocalRopeTheta is double local) rope["local_theta"] = local;
        return new JsonObject
        {
            ["family"] = names.ModelType,
            ["architecture"] = names.Architecture,
            ["parameters"] = c.ParameterCount(),
            ["layers"] = c.NumLayers,
            ["hidden_size"] = c.HiddenSize,
            ["intermediate_size"] = c.IntermediateSize,
            ["heads"] = c.NumHeads,
            ["kv_heads"] = c.NumKvHeads,
            ["head_dim"] = c.HeadDim,
            ["vocab_size"] = c.VocabSize,
            ["max_position_embeddings"] = c.MaxPositionEmbeddings,
            ["tie_word_embeddings"] = c.TieWordEmbeddings,
            ["rms_norm_eps"] = c.RmsNormEps,
            ["norm"] = c.Norm == NormStyle.UnitOffset ? "(1+w)·x" : "w·x",
            ["norms_per_layer"] = c.SandwichNorms ? 4 : 2,
            ["qkv_bias"] = c.AttentionBias,
            ["qk_norm"] = c.QkNorm,
            ["activation"] = c.Activation == MlpActivation.GeluTanh ? "gelu_tanh" : "silu",
            ["embedding_scale"] = c.ScaleEmbeddings ? Math.Sqrt(c.HiddenSize) : 1.0,
            ["attention_scale"] = 1 / Math.Sqrt(c.QueryPreAttnScalar ?? c.HeadDim),
            ["sliding_window"] = c.SlidingWindow,
            ["rope_theta"] = c.RopeTheta,
            ["full_attention_layers"] = new JsonArray(FullLayers(c).Select(i => (JsonNode)i).ToArray()),
            ["rope"] = rope,
            ["final_logit_softcapping"] = c.FinalLogitSoftcapping,
            ["torch_dtype"] = c.TorchDtype,
        };
    }

    /// <summary>"label: value" lines for the text report.</summary>
    public static IEnumerable<(string Label, string Value)> Lines(LlamaConfig c)
    {
        var ci = CultureInfo.InvariantCulture;
        var names = ModelFamilies.Of(c.Family);
        yield return ("architecture", $"{names.Architecture} ({names.ModelType})");
        yield return ("parameters", c.ParameterCount().ToString("N0", ci));
        yield return ("layers", $"{c.NumLayers}, hidden {c.HiddenSize}, FFN {c.IntermediateSize} ({(c.Activation == MlpActivation.GeluTanh ? "GeGLU, tanh-GELU" : "SwiGLU")})");
        string window = c.SlidingWindow is int w
            ? FullLayers(c).Count == 0 ? $", sliding window {w}" : $", sliding window {w}, full attention in layer{(FullLayers(c).Count > 1 ? "s" : "")} {string.Join(",", FullLayers(c))}"
            : "";
        yield return ("attention", $"{c.NumHeads} heads, {c.NumKvHeads} KV heads, head dim {c.HeadDim}"
            + (c.AttentionBias ? ", q/k/v bias" : "") + (c.QkNorm ? ", q/k norm" : "")
            + (c.QueryPreAttnScalar is double s ? string.Format(ci, ", scale {0}^-½", s) : "") + window);
        yield return ("norms", $"{(c.SandwichNorms ? 4 : 2)} per layer, RMSNorm {(c.Norm == NormStyle.UnitOffset ? "(1 + w)·x" : "w·x")}, eps {c.RmsNormEps.ToString(ci)}");
        string scaling = c.RopeScaling switch
        {
            RopeScalingKind.Linear => string.Format(ci, ", linear scaling ×{0}", c.RopeScalingFactor),
            RopeScalingKind.Dynamic => string.Format(ci, ", dynamic NTK scaling ×{0}", c.RopeScalingFactor),
            RopeScalingKind.Llama3 => string.Format(ci, ", llama3 scaling ×{0} (low {1}, high {2}, original context {3})",
                c.RopeScalingFactor, c.RopeLowFreqFactor, c.RopeHighFreqFactor, c.RopeOriginalMaxPositions),
            _ => "",
        };
        yield return ("rope", string.Format(ci, "theta {0}", c.RopeTheta) + scaling
            + (c.LocalRopeTheta is double local ? string.Format(ci, "; sliding layers theta {0}", local) : ""));
        yield return ("context", c.MaxPositionEmbeddings.ToString(ci));
        yield return ("embeddings", (c.TieWordEmbeddings ? "tied" : "untied") + (c.ScaleEmbeddings ? ", scaled by √hidden" : "")
            + (c.FinalLogitSoftcapping is double cap ? string.Format(ci, "; logits soft-capped at {0}", cap) : ""));
        yield return ("vocab", c.VocabSize.ToString(ci));
    }

    static List<int> FullLayers(LlamaConfig c) =>
        c.SlidingWindow is null ? new List<int>() : Enumerable.Range(0, c.NumLayers).Where(i => c.AttentionOf(i) == LayerAttention.Full).ToList();

    static string ScalingName(RopeScalingKind k) => k switch
    {
        RopeScalingKind.Linear => "linear",
        RopeScalingKind.Dynamic => "dynamic",
        RopeScalingKind.Llama3 => "llama3",
        _ => "none",
    };
}
