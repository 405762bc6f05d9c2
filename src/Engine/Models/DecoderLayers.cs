using Engine.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Engine.Models;

#pragma warning disable IDE1006 // naming: HF names

/// <summary>One transformer block; <see cref="Create"/> picks the arrangement of norms and residuals the config uses.</summary>
public abstract class DecoderLayer : nn.Module
{
    public Attention self_attn;
    public Mlp mlp;
    protected readonly int Index;

    protected DecoderLayer(string name, LlamaConfig c, int index, ScalarType dtype) : base(name)
    {
        Index = index;
        self_attn = new Attention(c, dtype);
        mlp = new Mlp(c, dtype);
    }

    public static DecoderLayer Create(LlamaConfig c, int index, ScalarType dtype) =>
        c.SandwichNorms ? new SandwichNormDecoderLayer(c, index, dtype) : new PreNormDecoderLayer(c, index, dtype);

    /// <param name="rope">this layer's RoPE tables (sliding layers may use another base)</param>
    /// <param name="mask">this layer's attention mask (sliding layers see only their window)</param>
    public abstract Tensor Forward(Tensor x, RotaryTables rope, Tensor? mask, KvCache? cache);
}

/// <summary>Llama, Mistral, Qwen: x + attn(norm(x)), then h + mlp(norm(h)).</summary>
public sealed class PreNormDecoderLayer : DecoderLayer
{
    public RmsNorm input_layernorm, post_attention_layernorm;

    public PreNormDecoderLayer(LlamaConfig c, int index, ScalarType dtype) : base("DecoderLayer", c, index, dtype)
    {
        input_layernorm = RmsNorm.Create(c, c.HiddenSize, dtype);
        post_attention_layernorm = RmsNorm.Create(c, c.HiddenSize, dtype);
        RegisterComponents();
    }

    public override Tensor Forward(Tensor x, RotaryTables rope, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = StableScalars.Add(x, self_attn.Forward(input_layernorm.forward(x), rope, mask, cache, Index));
        var o = StableScalars.Add(h, mlp.forward(post_attention_layernorm.forward(h)));
        return o.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Gemma 3: each branch is normalised before and after, x + norm(attn(norm(x))), then h + norm(mlp(norm(h))).
/// (Here post_attention_layernorm normalises the attention output; in Llama the same name is the pre-MLP norm.)
/// </summary>
public sealed class SandwichNormDecoderLayer : DecoderLayer
{
    public RmsNorm input_layernorm, post_attention_layernorm, pre_feedforward_layernorm, post_feedforward_layernorm;

    public SandwichNormDecoderLayer(LlamaConfig c, int index, ScalarType dtype) : base("SandwichDecoderLayer", c, index, dtype)
    {
        input_layernorm = RmsNorm.Create(c, c.HiddenSize, dtype);
        post_attention_layernorm = RmsNorm.Create(c, c.HiddenSize, dtype);
        pre_feedforward_layernorm = RmsNorm.Create(c, c.HiddenSize, dtype);
        post_feedforward_layernorm = RmsNorm.Create(c, c.HiddenSize, dtype);
        RegisterComponents();
    }

    public override Tensor Forward(Tensor x, RotaryTables rope, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = StableScalars.Add(x, post_attention_layernorm.forward(self_attn.Forward(input_layernorm.forward(x), rope, mask, cache, Index)));
        var o = StableScalars.Add(h, post_feedforward_layernorm.forward(mlp.forward(pre_feedforward_layernorm.forward(h))));
        return o.MoveToOuterDisposeScope();
    }
}
#pragma warning restore IDE1006
