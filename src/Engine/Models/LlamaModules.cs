using Engine.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Models;

// Field names below are the Hugging Face parameter names (TorchSharp names parameters after fields),
// so state dicts map one to one onto safetensors checkpoints.
#pragma warning disable IDE1006 // naming: HF names

/// <summary>RMSNorm as HF Llama computes it: normalise in fp32, cast back, then scale.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    public Parameter weight;
    readonly double _eps;

    public RmsNorm(int size, double eps, ScalarType dtype) : base("RmsNorm")
    {
        weight = new Parameter(torch.ones(size, dtype: dtype));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => StepProfiler.Run(OpClass.Norm, x, Normalise);

    Tensor Normalise(Tensor x)
    {
        if (LayerKernels.RmsNorm(x, weight, _eps, unitOffset: false) is { } fused) return fused;
        using var scope = NewDisposeScope();
        var xf = StepProfiler.Run(OpClass.Conversion, x, t => t.to(ScalarType.Float32));
        var normed = xf * torch.rsqrt(xf.pow(2).mean(new long[] { -1 }, keepdim: true) + _eps);
        return (weight * StepProfiler.Run(OpClass.Conversion, normed, t => t.to(x.dtype))).MoveToOuterDisposeScope();
    }
}

/// <summary>A bias-free linear layer holding its weight as [out, in] like nn.Linear.</summary>
public sealed class Projection : nn.Module<Tensor, Tensor>
{
    public Parameter weight;

    public Projection(int inFeatures, int outFeatures, ScalarType dtype) : base("Projection")
    {
        weight = new Parameter(torch.empty(outFeatures, inFeatures, dtype: dtype));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => StepProfiler.Run(OpClass.Matmul, x, t => F.linear(t, weight));
}

public sealed class Embedding : nn.Module<Tensor, Tensor>
{
    public Parameter weight;

    public Embedding(int vocab, int dim, ScalarType dtype) : base("Embedding")
    {
        weight = new Parameter(torch.empty(vocab, dim, dtype: dtype));
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        using var flat = ids.reshape(-1);
        var shape = ids.shape.Append(weight.shape[1]).ToArray();
        using var rows = weight.index_select(0, flat);
        return rows.view(shape);
    }
}

public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    public Projection gate_proj, up_proj, down_proj;

    public Mlp(LlamaConfig c, ScalarType dtype) : base("Mlp")
    {
        gate_proj = new Projection(c.HiddenSize, c.IntermediateSize, dtype);
        up_proj = new Projection(c.HiddenSize, c.IntermediateSize, dtype);
        down_proj = new Projection(c.IntermediateSize, c.HiddenSize, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor gate = gate_proj.forward(x), up = up_proj.forward(x);
        var h = StepProfiler.Run(OpClass.Activation, gate, g => LayerKernels.Gated(g, up, GatedActivation.SwiGlu) ?? F.silu(g) * up);
        return down_proj.forward(h).MoveToOuterDisposeScope();
    }
}

public sealed class Attention : nn.Module
{
    public Projection q_proj, k_proj, v_proj, o_proj;
    readonly int _heads, _kvHeads, _headDim;

    public Attention(LlamaConfig c, ScalarType dtype) : base("Attention")
    {
        _heads = c.NumHeads; _kvHeads = c.NumKvHeads; _headDim = c.HeadDim;
        q_proj = new Projection(c.HiddenSize, c.QueryDim, dtype);
        k_proj = new Projection(c.HiddenSize, c.KvDim, dtype);
        v_proj = new Projection(c.HiddenSize, c.KvDim, dtype);
        o_proj = new Projection(c.QueryDim, c.HiddenSize, dtype);
        RegisterComponents();
    }

    /// <param name="x">[B, T, hidden]</param>
    /// <param name="rope">cos/sin for these positions</param>
    /// <param name="mask">null for plain causal attention, else a boolean [B, 1, T, S] (true = attend)</param>
    /// <param name="cache">the layer's cache slot when generating; keys/values are appended</param>
    public Tensor Forward(Tensor x, RotaryTables rope, Tensor? mask, KvCache? cache, int layer)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        var q = q_proj.forward(x).view(b, t, _heads, _headDim);
        var k = k_proj.forward(x).view(b, t, _kvHeads, _headDim);
        var v = v_proj.forward(x).view(b, t, _kvHeads, _headDim).transpose(1, 2);
        (q, k) = rope.ApplyToQueryKey(q, k);
        if (cache != null) (k, v) = cache.Append(layer, k, v);
        int rep = _heads / _kvHeads;
        if (rep > 1)
        {
            long s = k.shape[2];
            k = k.unsqueeze(2).expand(b, _kvHeads, rep, s, _headDim).reshape(b, _heads, s, _headDim);
            v = v.unsqueeze(2).expand(b, _kvHeads, rep, s, _headDim).reshape(b, _heads, s, _headDim);
        }
        var attn = StepProfiler.Run(OpClass.Attention, q, qq => mask is null
            ? F.scaled_dot_product_attention(qq, k, v, null, 0.0, true)
            : F.scaled_dot_product_attention(qq, k, v, mask, 0.0, false));
        var merged = attn.transpose(1, 2).reshape(b, t, _heads * _headDim);
        return o_proj.forward(merged).MoveToOuterDisposeScope();
    }
}

public sealed class DecoderLayer : nn.Module
{
    public RmsNorm input_layernorm, post_attention_layernorm;
    public Attention self_attn;
    public Mlp mlp;
    readonly int _index;

    public DecoderLayer(LlamaConfig c, int index, ScalarType dtype) : base("DecoderLayer")
    {
        _index = index;
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
        self_attn = new Attention(c, dtype);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
        mlp = new Mlp(c, dtype);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, RotaryTables rope, Tensor? mask, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.Forward(input_layernorm.forward(x), rope, mask, cache, _index);
        var o = h + mlp.forward(post_attention_layernorm.forward(h));
        return o.MoveToOuterDisposeScope();
    }
}

/// <summary>The decoder stack without the LM head (HF's LlamaModel, parameter prefix <c>model.</c>).</summary>
public sealed class LlamaDecoder : nn.Module
{
    public Embedding embed_tokens;
    public ModuleList<DecoderLayer> layers;
    public RmsNorm norm;

    public LlamaDecoder(LlamaConfig c, ScalarType dtype) : base("LlamaModel")
    {
        embed_tokens = new Embedding(c.VocabSize, c.HiddenSize, dtype);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, c.NumLayers).Select(i => new DecoderLayer(c, i, dtype)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
        RegisterComponents();
    }
}
#pragma warning restore IDE1006
