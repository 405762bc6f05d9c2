using System.Text.RegularExpressions;

namespace Engine.Gguf;

/// <summary>Hugging Face ↔ llama.cpp tensor names for the llama architecture.</summary>
public static partial class LlamaTensorNames
{
    static readonly (string Hf, string Gguf)[] Global =
    {
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    };

    static readonly (string Hf, string Gguf)[] PerLayer =
    {
        ("input_layernorm.weight", "attn_norm.weight"),
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.o_proj.weight", "attn_output.weight"),
        ("post_attention_layernorm.weight", "ffn_norm.weight"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"),
        ("mlp.up_proj.weight", "ffn_up.weight"),
        ("mlp.down_proj.weight", "ffn_down.weight"),
    };

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial Regex HfLayer();

    [GeneratedRegex(@"^blk\.(\d+)\.(.+)$")]
    private static partial Regex GgufLayer();

    public static string? ToGguf(string hf)
    {
        foreach (var (h, g) in Global) if (h == hf) return g;
        var m = HfLayer().Match(hf);
        if (!m.Success) return null;
        foreach (var (h, g) in PerLayer) if (h == m.Groups[2].Value) return $"blk.{m.Groups[1].Value}.{g}";
        return null;
    }

    public static string? ToHf(string gguf)
    {
        foreach (var (h, g) in Global) if (g == gguf) return h;
        var m = GgufLayer().Match(gguf);
        if (!m.Success) return null;
        foreach (var (h, g) in PerLayer) if (g == m.Groups[2].Value) return $"model.layers.{m.Groups[1].Value}.{h}";
        return null;
    }

    /// <summary>The layer index of a per-layer GGUF name (blk.N.*), or null.</summary>
    public static int? LayerOf(string gguf)
    {
        var m = GgufLayer().Match(gguf);
        return m.Success && int.TryParse(m.Groups[1].Value, out int n) ? n : null;
    }

    /// <summary>The HF names a Llama model with this config has, in checkpoint order.</summary>
    public static IEnumerable<string> HfNames(Models.LlamaConfig config)
    {
        yield return "model.embed_tokens.weight";
        for (int i = 0; i < config.NumLayers; i++)
            foreach (var (h, _) in PerLayer) yield return $"model.layers.{i}.{h}";
        yield return "model.norm.weight";
        if (!config.TieWordEmbeddings) yield return "lm_head.weight";
    }

    /// <summary>The PyTorch shape a Llama model with this config gives an HF-named tensor, or null for unknown names.</summary>
    public static long[]? ExpectedShape(Models.LlamaConfig c, string hf)
    {
        long h = c.HiddenSize, q = c.QueryDim, kv = c.KvDim, f = c.IntermediateSize, v = c.VocabSize;
        if (hf is "model.embed_tokens.weight" or "lm_head.weight") return new[] { v, h };
        if (hf == "model.norm.weight") return new[] { h };
        var m = HfLayer().Match(hf);
        if (!m.Success) return null;
        return m.Groups[2].Value switch
        {
            "input_layernorm.weight" or "post_attention_layernorm.weight" => new[] { h },
            "self_attn.q_proj.weight" => new[] { q, h },
            "self_attn.k_proj.weight" or "self_attn.v_proj.weight" => new[] { kv, h },
            "self_attn.o_proj.weight" => new[] { h, q },
            "mlp.gate_proj.weight" or "mlp.up_proj.weight" => new[] { f, h },
            "mlp.down_proj.weight" => new[] { h, f },
            _ => null,
        };
    }
}
