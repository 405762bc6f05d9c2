namespace Engine.Models;

/// <summary>
/// The tensors a Hugging Face checkpoint of a config holds, by name and PyTorch shape, in checkpoint order (the names
/// <see cref="LlamaForCausalLM"/>'s parameters carry). Formats that rename tensors (GGUF) map from this list.
/// </summary>
public static class HfTensorLayout
{
    public const string Embedding = "model.embed_tokens.weight", FinalNorm = "model.norm.weight", LmHead = "lm_head.weight";
    const string LayerPrefix = "model.layers.";

    /// <summary>Per-layer tensors (name after <c>model.layers.N.</c>) with their shapes; absent ones are skipped.</summary>
    static IEnumerable<(string Suffix, long[] Shape)> LayerTensors(LlamaConfig c)
    {
        long h = c.HiddenSize, q = c.QueryDim, kv = c.KvDim, f = c.IntermediateSize, d = c.HeadDim;
        yield return ("input_layernorm.weight", new[] { h });
        yield return ("self_attn.q_proj.weight", new[] { q, h });
        if (c.AttentionBias) yield return ("self_attn.q_proj.bias", new[] { q });
        yield return ("self_attn.k_proj.weight", new[] { kv, h });
        if (c.AttentionBias) yield return ("self_attn.k_proj.bias", new[] { kv });
        yield return ("self_attn.v_proj.weight", new[] { kv, h });
        if (c.AttentionBias) yield return ("self_attn.v_proj.bias", new[] { kv });
        yield return ("self_attn.o_proj.weight", new[] { h, q });
        if (c.QkNorm)
        {
            yield return ("self_attn.q_norm.weight", new[] { d });
            yield return ("self_attn.k_norm.weight", new[] { d });
        }
        yield return ("post_attention_layernorm.weight", new[] { h });
        if (c.SandwichNorms)
        {
            yield return ("pre_feedforward_layernorm.weight", new[] { h });
            yield return ("post_feedforward_layernorm.weight", new[] { h });
        }
        yield return ("mlp.gate_proj.weight", new[] { f, h });
        yield return ("mlp.up_proj.weight", new[] { f, h });
        yield return ("mlp.down_proj.weight", new[] { h, f });
    }

    /// <summary>Every tensor of the checkpoint (no lm_head when the embeddings are tied).</summary>
    public static IEnumerable<(string Name, long[] Shape)> Tensors(LlamaConfig c)
    {
        yield return (Embedding, new long[] { c.VocabSize, c.HiddenSize });
        var layer = LayerTensors(c).ToList();
        for (int i = 0; i < c.NumLayers; i++)
            foreach (var (suffix, shape) in layer) yield return ($"{LayerPrefix}{i}.{suffix}", shape);
        yield return (FinalNorm, new long[] { c.HiddenSize });
        if (!c.TieWordEmbeddings) yield return (LmHead, new long[] { c.VocabSize, c.HiddenSize });
    }

    /// <summary>How many tensors <see cref="Tensors"/> lists, without listing them (bounded by hostile layer counts).</summary>
    public static long Count(LlamaConfig c) => 2 + (long)LayerTensors(c).Count() * c.NumLayers + (c.TieWordEmbeddings ? 0 : 1);

    /// <summary>(layer, suffix) of a per-layer name, or null for global tensors and foreign names.</summary>
    public static (int Layer, string Suffix)? SplitLayer(string name)
    {
        if (!name.StartsWith(LayerPrefix, StringComparison.Ordinal)) return null;
        int dot = name.IndexOf('.', LayerPrefix.Length);
        if (dot < 0 || !int.TryParse(name.AsSpan(LayerPrefix.Length, dot - LayerPrefix.Length), out int layer) || layer < 0) return null;
        return (layer, name[(dot + 1)..]);
    }

    public static string LayerName(int layer, string suffix) => $"{LayerPrefix}{layer}.{suffix}";
}
