using Engine.Util;
using Engine.Kernels;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Models;

// Field names below are the Hugging Face parameter names (TorchSharp names parameters after fields, and skips null
// fields), so state dicts map one to one onto safetensors checkpoints.
#pragma warning disable IDE1006 // naming: HF names

/// <summary>An RMSNorm over the last dimension; <see cref="Create"/> picks the family's way of applying the weight.</summary>
public abstract class RmsNorm : nn.Module<Tensor, Tensor>
{
    public Parameter weight;
    protected readonly double Eps;

    protected RmsNorm(string name, int size, double eps, ScalarType dtype, double initialWeight) : base(name)
    {
        weight = new Parameter(torch.full(size, initialWeight, dtype: dtype));
        Eps = eps;
        RegisterComponents();
    }

    /// <summary>The norm for <paramref name="c"/>'s style, with the weight at its identity value.</summary>
    public static RmsNorm Create(LlamaConfig c, int size, ScalarType dtype) => c.Norm switch
    {
        NormStyle.UnitOffset => new UnitOffsetRmsNorm(size, c.RmsNormEps, dtype),
        _ => new WeightRmsNorm(size, c.RmsNormEps, dtype),
    };

    /// <summary>The normalised input in fp32: x / √(mean(x²) + eps).</summary>
    protected Tensor Normalise(Tensor xf) => xf * torch.rsqrt(xf.pow(2).mean(new long[] { -1 }, keepdim: true) + Eps);
}

/// <summary>HF Llama's RMSNorm: normalise in fp32, cast back, then scale by the weight.</summary>
public sealed class WeightRmsNorm : RmsNorm
{
    public WeightRmsNorm(int size, double eps, ScalarType dtype) : base("RmsNorm", size, eps, dtype, 1.0) { }

    public override Tensor forward(Tensor x) => StepProfiler.Run(OpClass.Norm, x, Apply);

    Tensor Apply(Tensor x)
    {
        if (LayerKernels.RmsNorm(x, weight, Eps, unitOffset: false) is { } fused) return fused;
        using var scope = NewDisposeScope();
        var normed = Normalise(StepProfiler.Run(OpClass.Conversion, x, t => t.to(ScalarType.Float32)));
        return (weight * StepProfiler.Run(OpClass.Conversion, normed, t => t.to(x.dtype))).MoveToOuterDisposeScope();
    }
}

/// <summary>Gemma's RMSNorm: the weight is stored as an offset from 1 and applied as (1 + w) in fp32, then cast.</summary>
public sealed class UnitOffsetRmsNorm : RmsNorm
{
    public UnitOffsetRmsNorm(int size, double eps, ScalarType dtype) : base("UnitOffsetRmsNorm", size, eps, dtype, 0.0) { }

    public override Tensor forward(Tensor x) => StepProfiler.Run(OpClass.Norm, x, Apply);

    Tensor Apply(Tensor x)
    {
        if (LayerKernels.RmsNorm(x, weight, Eps, unitOffset: true) is { } fused) return fused;
        using var scope = NewDisposeScope();
        var scale = weight.to(ScalarType.Float32) + 1.0;
        return (Normalise(x.to(ScalarType.Float32)) * scale).to(x.dtype).MoveToOuterDisposeScope();
    }
}

/// <summary>A linear layer holding its weight as [out, in] like nn.Linear, with an optional bias.</summary>
public sealed class Projection : nn.Module<Tensor, Tensor>
{
    public Parameter weight;
    public Parameter? bias;

    /// <summary>Replaces the dense weight in the product when the frozen base is stored another way (quantized); null: dense.</summary>
    public IFrozenLinearBase? FrozenBase { get; set; }
    /// <summary>A low-rank update added to the output (LoRA); null: none. Not a registered module, so the model's own
    /// parameters, state dict and exports stay the base model's.</summary>
    public ILinearAdapter? Adapter { get; set; }

    public Projection(int inFeatures, int outFeatures, ScalarType dtype, bool hasBias = false) : base("Projection")
    {
        weight = new Parameter(torch.empty(outFeatures, inFeatures, dtype: dtype));
        if (hasBias) bias = new Parameter(torch.zeros(outFeatures, dtype: dtype));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (FrozenBase is null && Adapter is null) return StepProfiler.Run(OpClass.Matmul, x, t => F.linear(t, weight, bias));
        using var scope = NewDisposeScope();
        var y = FrozenBase is { } frozen ? (bias is null ? frozen.Forward(x) : frozen.Forward(x) + bias) : F.linear(x, weight, bias);
        if (Adapter is { } a) y = a.Forward(x, y);
        return y.MoveToOuterDisposeScope();
    }
}

public sealed class Embedding : nn.Module<Tensor, Tensor>
{
    public Parameter weight;
    readonly float? _scale;

    /// <param name="scale">a factor the rows are multiplied by after lookup (Gemma's √hidden), rounded to the weight's
    /// dtype first as HF does; null for none</param>
    public Embedding(int vocab, int dim, ScalarType dtype, float? scale = null) : base("Embedding")
    {
        weight = new Parameter(torch.empty(vocab, dim, dtype: dtype));
        _scale = scale;
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var flat = ids.reshape(-1);
        var shape = ids.shape.Append(weight.shape[1]).ToArray();
        var rows = weight.index_select(0, flat).view(shape);
        if (_scale is float s) rows = rows * torch.tensor(s, dtype: ScalarType.Float32).to(weight.dtype);
        return rows.MoveToOuterDisposeScope();
    }
}

/// <summary>The gated MLP: down(act(gate(x)) · up(x)) with SwiGLU's silu or GeGLU's tanh-GELU.</summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    public Projection gate_proj, up_proj, down_proj;

    /// <summary>The gate activation; tests swap in other runtimes' approximations to account for differences.</summary>
    internal Func<Tensor, Tensor> Activation { get; set; }
    readonly Func<Tensor, Tensor> _familyActivation;
    readonly GatedActivation _gated;

    public Mlp(LlamaConfig c, ScalarType dtype) : base("Mlp")
    {
        gate_proj = new Projection(c.HiddenSize, c.IntermediateSize, dtype);
        up_proj = new Projection(c.HiddenSize, c.IntermediateSize, dtype);
        down_proj = new Projection(c.IntermediateSize, c.HiddenSize, dtype);
        Activation = c.Activation switch
        {
            MlpActivation.GeluTanh => x => F.gelu(x, GELU.Approximate.tanh, false),
            _ => x => F.silu(x),
        };
        _familyActivation = Activation;
        _gated = c.Activation == MlpActivation.GeluTanh ? GatedActivation.GeGlu : GatedActivation.SwiGlu;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        Tensor gate = gate_proj.forward(x), up = up_proj.forward(x);
        // The fused kernel computes the family's own activation; a swapped-in one (tests) runs as given.
        var h = StepProfiler.Run(OpClass.Activation, gate, g =>
            (ReferenceEquals(Activation, _familyActivation) ? LayerKernels.Gated(g, up, _gated) : null) ?? Activation(g) * up);
        return down_proj.forward(h).MoveToOuterDisposeScope();
    }
}

public sealed class Attention : nn.Module
{
    public Projection q_proj, k_proj, v_proj, o_proj;
    /// <summary>Per-head norms of q and k before RoPE (Qwen3, Gemma 3); null otherwise.</summary>
    public RmsNorm? q_norm, k_norm;
    readonly int _heads, _kvHeads, _headDim;
    readonly double _queryPreScale;

    public Attention(LlamaConfig c, ScalarType dtype) : base("Attention")
    {
        _heads = c.NumHeads; _kvHeads = c.NumKvHeads; _headDim = c.HeadDim;
        _queryPreScale = c.QueryPreScale;
        q_proj = new Projection(c.HiddenSize, c.QueryDim, dtype, c.AttentionBias);
        k_proj = new Projection(c.HiddenSize, c.KvDim, dtype, c.AttentionBias);
        v_proj = new Projection(c.HiddenSize, c.KvDim, dtype, c.AttentionBias);
        o_proj = new Projection(c.QueryDim, c.HiddenSize, dtype);
        if (c.QkNorm)
        {
            q_norm = RmsNorm.Create(c, c.HeadDim, dtype);
            k_norm = RmsNorm.Create(c, c.HeadDim, dtype);
        }
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
        if (q_norm != null) q = q_norm.forward(q);
        if (k_norm != null) k = k_norm.forward(k);
        (q, k) = rope.ApplyToQueryKey(q, k);
        // SDPA scales by head_dim^-½; a model with another scale has q pre-multiplied to make up the difference.
        if (_queryPreScale != 1.0) q = q * _queryPreScale;
        if (cache != null) (k, v) = cache.Append(layer, k, v);
        int rep = _heads / _kvHeads;
        if (rep > 1)
        {
            long s = k.shape[2];
            k = k.unsqueeze(2).expand(b, _kvHeads, rep, s, _headDim).reshape(b, _heads, s, _headDim);
            v = v.unsqueeze(2).expand(b, _kvHeads, rep, s, _headDim).reshape(b, _heads, s, _headDim);
        }
        var attn = StepProfiler.Run(OpClass.Attention, q, qq => mask is null
            ? (cache is null && UsesExplicitSoftmax(qq.device_type, qq.dtype, t) ? CausalSoftmaxAttention(qq, k, v) : F.scaled_dot_product_attention(qq, k, v, null, 0.0, true))
            : F.scaled_dot_product_attention(qq, k, v, mask, 0.0, false));
        var merged = attn.transpose(1, 2).reshape(b, t, _heads * _headDim);
        return o_proj.forward(merged).MoveToOuterDisposeScope();
    }

    /// <summary>Sequences up to this length take <see cref="CausalSoftmaxAttention"/> in CPU bf16: its saved
    /// probabilities grow as T², [B, heads, T, T] × 2 B per layer (1 KiB per token and head at 512). Settable for tests
    /// and measurements that compare the two paths (0: SDPA always).</summary>
    internal static int ProbabilitiesMaxLength { get; set; } = DefaultProbabilitiesMaxLength;

    public const int DefaultProbabilitiesMaxLength = 512;

    /// <summary>
    /// Whether a causal attention over <paramref name="length"/> tokens (no cache) runs as explicit matmuls and a softmax
    /// (with autograd on, saving the bf16 probabilities) instead of SDPA: on the CPU in bf16 only. The same with autograd
    /// off, so a checkpointed layer's recompute computes what its forward did. libtorch's CPU flash attention
    /// does its blocks' bf16 products as many small oneDNN calls and its backward took longer than in f32 (measured on
    /// bench-25m: 524 vs 456 ms CPU time for 8 layers forward + backward on one thread; this path 350 ms, docs/kernels.md).
    /// The planner reads the same rule (LayerActivations).
    /// </summary>
    public static bool UsesExplicitSoftmax(DeviceType device, ScalarType dtype, long length) =>
        device == DeviceType.CPU && dtype == ScalarType.BFloat16 && length <= ProbabilitiesMaxLength;

    /// <summary>
    /// softmax(q·kᵀ/√d + causal mask)·v, as Hugging Face's eager attention computes it in bf16: scores in bf16, the
    /// softmax accumulated in fp32 and rounded to bf16. q, k, v: [B, heads, T, d] with k and v already expanded to all heads.
    /// </summary>
    internal static Tensor CausalSoftmaxAttention(Tensor q, Tensor k, Tensor v)
    {
        using var scope = NewDisposeScope();
        long t = q.shape[2];
        // In place: matmul's backward needs its inputs, not its output; the scale and the fill keep no tensor for backward,
        // and softmax keeps its output, so the scores are freed as soon as it has run.
        var scores = StableScalars.MulInPlace(torch.matmul(q, k.transpose(-2, -1)), 1.0 / Math.Sqrt(q.shape[^1]));
        using (var future = torch.ones(t, t, dtype: ScalarType.Bool, device: q.device).triu_(1)) scores.masked_fill_(future, double.NegativeInfinity);
        var probabilities = F.softmax(scores, -1);
        scores.Dispose();
        return torch.matmul(probabilities, v).MoveToOuterDisposeScope();
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
        embed_tokens = new Embedding(c.VocabSize, c.HiddenSize, dtype, c.ScaleEmbeddings ? MathF.Sqrt(c.HiddenSize) : null);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, c.NumLayers).Select(i => DecoderLayer.Create(c, i, dtype)).ToArray());
        norm = RmsNorm.Create(c, c.HiddenSize, dtype);
        RegisterComponents();
    }
}
#pragma warning restore IDE1006
