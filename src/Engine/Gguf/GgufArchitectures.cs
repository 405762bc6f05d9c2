using Engine.Models;

namespace Engine.Gguf;

/// <summary>
/// The llama.cpp architectures Engine exports to and imports from, with their tensor names as gguf-py's tensor map
/// gives them (MODEL_TENSOR names in gguf/constants.py) and the changes convert_hf_to_gguf.py makes to the tensors.
/// </summary>
public static class GgufArchitectures
{
    static readonly (string Hf, string Gguf)[] Attention =
    {
        ("input_layernorm.weight", "attn_norm.weight"),
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.o_proj.weight", "attn_output.weight"),
    };

    static readonly (string Hf, string Gguf)[] Biases =
    {
        ("self_attn.q_proj.bias", "attn_q.bias"),
        ("self_attn.k_proj.bias", "attn_k.bias"),
        ("self_attn.v_proj.bias", "attn_v.bias"),
    };

    static readonly (string Hf, string Gguf)[] QkNorms =
    {
        ("self_attn.q_norm.weight", "attn_q_norm.weight"),
        ("self_attn.k_norm.weight", "attn_k_norm.weight"),
    };

    static readonly (string Hf, string Gguf)[] Mlp =
    {
        ("mlp.gate_proj.weight", "ffn_gate.weight"),
        ("mlp.up_proj.weight", "ffn_up.weight"),
        ("mlp.down_proj.weight", "ffn_down.weight"),
    };

    /// <summary>The pre-MLP norm of Llama-style layers (HF calls it post_attention_layernorm).</summary>
    static readonly (string Hf, string Gguf)[] PreMlpNorm = { ("post_attention_layernorm.weight", "ffn_norm.weight") };

    /// <summary>Gemma 3's four norms: HF's post_attention_layernorm normalises the attention output here.</summary>
    static readonly (string Hf, string Gguf)[] SandwichNorms =
    {
        ("post_attention_layernorm.weight", "post_attention_norm.weight"),
        ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
        ("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
    };

    /// <summary>LLM_ARCH_LLAMA: Llama 1–3, SmolLM2, Mistral (its sliding window is not represented). NORM RoPE, so the
    /// converter interleaves q/k rows; llama3 scaling travels as the rope_freqs tensor.</summary>
    public static readonly GgufArchitecture Llama = new()
    {
        Name = "llama",
        Families = new[] { ModelFamily.Llama, ModelFamily.Mistral },
        LayerTensors = Attention.Concat(PreMlpNorm).Concat(Mlp).ToArray(),
        InterleavesRope = true,
    };

    /// <summary>LLM_ARCH_QWEN2: NEOX RoPE (rotate-half, as HF: no permutation), q/k/v biases.</summary>
    public static readonly GgufArchitecture Qwen2 = new()
    {
        Name = "qwen2",
        Families = new[] { ModelFamily.Qwen2 },
        LayerTensors = Attention.Concat(Biases).Concat(PreMlpNorm).Concat(Mlp).ToArray(),
    };

    /// <summary>LLM_ARCH_QWEN3: NEOX RoPE, per-head q/k norms.</summary>
    public static readonly GgufArchitecture Qwen3 = new()
    {
        Name = "qwen3",
        Families = new[] { ModelFamily.Qwen3 },
        LayerTensors = Attention.Concat(QkNorms).Concat(PreMlpNorm).Concat(Mlp).ToArray(),
    };

    /// <summary>LLM_ARCH_GEMMA3: NEOX RoPE, q/k norms, four norms per layer, every norm stored as 1 + w.</summary>
    public static readonly GgufArchitecture Gemma3 = new()
    {
        Name = "gemma3",
        Families = new[] { ModelFamily.Gemma3 },
        LayerTensors = Attention.Concat(QkNorms).Concat(SandwichNorms).Concat(Mlp).ToArray(),
        NormShift = 1.0,
    };

    public static readonly IReadOnlyList<GgufArchitecture> All = new[] { Llama, Qwen2, Qwen3, Gemma3 };

    public static GgufArchitecture For(ModelFamily family) =>
        All.FirstOrDefault(a => a.Families.Contains(family)) ?? throw new EngineException($"no llama.cpp architecture for {family} models");

    public static GgufArchitecture? ByName(string name) => All.FirstOrDefault(a => a.Name == name);

    public static string Names => string.Join(", ", All.Select(a => a.Name));
}
