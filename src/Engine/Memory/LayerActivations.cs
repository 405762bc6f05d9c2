using Engine.Kernels;
using Engine.Models;
using Engine.Training;

namespace Engine.Memory;

/// <summary>One tensor that autograd keeps alive from a decoder layer's forward until its backward.</summary>
/// <param name="Name">where it comes from in LlamaModules.cs</param>
/// <param name="ElementsPerToken">its size divided by the number of tokens (B·T)</param>
/// <param name="BytesPerElement">its dtype's size</param>
public sealed record SavedTensor(string Name, long ElementsPerToken, int BytesPerElement)
{
    public long BytesPerToken => ElementsPerToken * BytesPerElement;
}

/// <summary>
/// What autograd saves in one forward of Engine's decoder layer (LlamaModules.cs, DecoderLayers.cs), tensor by tensor,
/// so the activation memory can be audited. Derived from the backward formulas of each op and checked by measurement
/// (docs/memory.md):
/// <list type="bullet">
/// <item>RmsNorm (Llama style, w · x̂): <c>x.to(f32)</c> is saved by <c>pow</c> and by the product with rsqrt (in f32 it is
/// the input itself, no copy), rsqrt's result [N,1] f32, and the normalised tensor in the compute dtype (saved by the
/// product with the weight). Gemma's (1 + w) · x̂ multiplies in fp32, so its normalised tensor is saved in fp32.</item>
/// <item>Linear layers save their input (q/k/v share the norm's output; gate/up share theirs); biases save nothing more.</item>
/// <item>q/k norms (Qwen3, Gemma 3) are RmsNorms over head_dim: they save the projection's output in fp32 (nothing else
/// keeps it), one rsqrt per head and their normalised output.</item>
/// <item>RoPE multiplies by the constant cos/sin tables: nothing of size N is saved, the rotated q/k are. A query
/// pre-scale (Gemma's query_pre_attn_scalar) multiplies by a constant too.</item>
/// <item>GQA: the expand+reshape materialises k and v with all query heads; SDPA saves those copies, q, its output
/// and the fp32 log-sum-exp [B, heads, T] (the flash path, which libtorch takes on the CPU for a causal mask).
/// The output's memory layout is [B, T, heads, d], so the merge before o_proj is a view.</item>
/// <item>MLP: the activation (silu or tanh-GELU) saves its input (gate output), the product saves both operands,
/// down_proj saves the product.</item>
/// <item>Residual sums save nothing; the attention residual is saved in f32 by the MLP's input norm (it is that norm's
/// f32 input), in bf16 the norm saves its own fp32 copy instead. Gemma's output norms of the attention and MLP branches
/// save their inputs (o_proj's and down_proj's outputs) in fp32 the same way.</item>
/// </list>
/// With the fused kernels (<see cref="KernelChoice.Fused"/>) each norm saves only its input (in the compute dtype)
/// and one fp32 inverse RMS per token, RoPE rotates q and k in place (nothing saved but the tables), and the gated
/// activation saves gate and up and recomputes the activation: the silu output and the norms' fp32/normalised
/// copies are gone.
/// CPU bf16 attention over up to <see cref="Attention.ProbabilitiesMaxLength"/> tokens runs as explicit matmuls and a
/// softmax (<see cref="Attention.UsesExplicitSoftmax"/>): it saves the bf16 probabilities [B, heads, T, T] (heads·T
/// elements per token, <paramref name="probabilityKeys"/> = T) and no log-sum-exp.
/// </summary>
public static class LayerActivations
{
    /// <param name="probabilityKeys">keys per query whose probabilities the attention saves (T, where
    /// <see cref="ProbabilityKeys"/> says the explicit softmax runs), 0 for SDPA</param>
    public static IReadOnlyList<SavedTensor> PerLayer(LlamaConfig c, Precision precision, KernelChoice kernels, long probabilityKeys = 0)
    {
        var list = PerLayerWithSdpa(c, precision, kernels);
        if (probabilityKeys <= 0) return list;
        return list.Where(t => !t.Name.StartsWith(LogSumExp))
            .Append(new SavedTensor($"attention probabilities [B, heads, T, T] (explicit softmax, T = {probabilityKeys})", c.NumHeads * probabilityKeys, 2)).ToList();
    }

    /// <summary>T where a training step of sequence length <paramref name="seqLen"/> saves the attention probabilities
    /// (CPU, bf16, <see cref="Attention.UsesExplicitSoftmax"/>), else 0.</summary>
    public static long ProbabilityKeys(MemoryDevice device, Precision precision, long seqLen) =>
        device == MemoryDevice.Cpu && Attention.UsesExplicitSoftmax(TorchSharp.DeviceType.CPU, StepSettings.ComputeDtype(precision), seqLen) ? seqLen : 0;

    const string LogSumExp = "SDPA log-sum-exp";

    static IReadOnlyList<SavedTensor> PerLayerWithSdpa(LlamaConfig c, Precision precision, KernelChoice kernels)
    {
        int s = ComputeBytes(precision);
        bool f32 = s == 4;
        if (kernels == KernelChoice.Fused) return FusedPerLayer(c, s);
        bool offset = c.Norm == NormStyle.UnitOffset;
        long h = c.HiddenSize, q = c.QueryDim, kv = c.KvDim, i = c.IntermediateSize;
        long kvSaved = c.NumHeads > c.NumKvHeads ? q : kv; // the expanded copies, or k/v themselves without GQA
        var list = new List<SavedTensor>();
        if (f32) list.Add(new("layer input (saved by input_layernorm's pow)", h, 4));
        list.AddRange(Norm("input_layernorm", h, 1, f32, offset));
        list.Add(new("q/k/v_proj input (the norm's output)", h, s));
        if (c.QkNorm)
        {
            list.Add(new("q_norm: q_proj output in fp32", q, 4));
            list.AddRange(Norm("q_norm", q, c.NumHeads, f32, offset, copyCounted: true));
            list.Add(new("k_norm: k_proj output in fp32", kv, 4));
            list.AddRange(Norm("k_norm", kv, c.NumKvHeads, f32, offset, copyCounted: true));
        }
        list.Add(new("q after RoPE (SDPA input)", q, s));
        list.Add(new("k after RoPE, expanded to all heads (SDPA input)", kvSaved, s));
        list.Add(new("v expanded to all heads (SDPA input)", kvSaved, s));
        list.Add(new("SDPA output (o_proj input, a view of it)", q, s));
        list.Add(new($"{LogSumExp} [B, heads, T] fp32", c.NumHeads, 4));
        if (c.SandwichNorms)
        {
            list.Add(new("post_attention_layernorm: o_proj output in fp32", h, 4));
            list.AddRange(Norm("post_attention_layernorm", h, 1, f32, offset, copyCounted: true));
        }
        string mlpNorm = c.SandwichNorms ? "pre_feedforward_layernorm" : "post_attention_layernorm";
        if (f32) list.Add(new($"attention residual h (saved by {mlpNorm}'s pow)", h, 4));
        list.AddRange(Norm(mlpNorm, h, 1, f32, offset));
        list.Add(new("gate/up_proj input (the norm's output)", h, s));
        string act = c.Activation == MlpActivation.GeluTanh ? "gelu" : "silu";
        list.Add(new($"gate_proj output ({act} input)", i, s));
        list.Add(new($"{act} output (product operand)", i, s));
        list.Add(new("up_proj output (product operand)", i, s));
        list.Add(new($"{act}·up product (down_proj input)", i, s));
        if (c.SandwichNorms)
        {
            list.Add(new("post_feedforward_layernorm: down_proj output in fp32", h, 4));
            list.AddRange(Norm("post_feedforward_layernorm", h, 1, f32, offset, copyCounted: true));
        }
        return list;
    }

    static IReadOnlyList<SavedTensor> FusedPerLayer(LlamaConfig c, int s)
    {
        long h = c.HiddenSize, q = c.QueryDim, kv = c.KvDim, i = c.IntermediateSize;
        long kvSaved = c.NumHeads > c.NumKvHeads ? q : kv;
        IEnumerable<SavedTensor> Norm(string name, string input, long size, long groups) => new SavedTensor[]
        {
            new($"{name}: its input ({input})", size, s),
            new($"{name}: inverse RMS [N, {(groups == 1 ? "1" : "heads")}] fp32", groups, 4),
        };
        var list = new List<SavedTensor>();
        list.AddRange(Norm("input_layernorm", "the layer input", h, 1));
        list.Add(new("q/k/v_proj input (the norm's output)", h, s));
        if (c.QkNorm)
        {
            list.AddRange(Norm("q_norm", "q_proj output", q, c.NumHeads));
            list.AddRange(Norm("k_norm", "k_proj output", kv, c.NumKvHeads));
        }
        list.Add(new("q rotated in place (SDPA input)", q, s));
        list.Add(new("k rotated in place, expanded to all heads (SDPA input)", kvSaved, s));
        list.Add(new("v expanded to all heads (SDPA input)", kvSaved, s));
        list.Add(new("SDPA output (o_proj input, a view of it)", q, s));
        list.Add(new($"{LogSumExp} [B, heads, T] fp32", c.NumHeads, 4));
        if (c.SandwichNorms) list.AddRange(Norm("post_attention_layernorm", "o_proj output", h, 1));
        list.AddRange(Norm(c.SandwichNorms ? "pre_feedforward_layernorm" : "post_attention_layernorm", "the attention residual", h, 1));
        list.Add(new("gate/up_proj input (the norm's output)", h, s));
        list.Add(new("gate_proj output (saved by the fused activation)", i, s));
        list.Add(new("up_proj output (saved by the fused activation)", i, s));
        list.Add(new("act(gate)·up (down_proj input)", i, s));
        if (c.SandwichNorms) list.AddRange(Norm("post_feedforward_layernorm", "down_proj output", h, 1));
        return list;
    }

    /// <param name="groups">rows normalised per token (heads for q/k norms)</param>
    /// <param name="copyCounted">the fp32 input is listed by the caller (the norm's input is no saved tensor of its own)</param>
    static IEnumerable<SavedTensor> Norm(string name, long size, long groups, bool f32, bool offset, bool copyCounted = false)
    {
        if (!f32 && !copyCounted) yield return new($"{name}: fp32 copy of its input", size, 4);
        yield return new($"{name}: rsqrt of the mean square [N, {(groups == 1 ? "1" : "heads")}] fp32", groups, 4);
        yield return new($"{name}: normalised input (weight product operand)", size, f32 || offset ? 4 : 2);
    }

    /// <summary>Bytes per token saved by one layer without checkpointing.</summary>
    public static long BytesPerToken(LlamaConfig c, Precision precision, KernelChoice kernels, long probabilityKeys = 0) =>
        PerLayer(c, precision, kernels, probabilityKeys).Sum(t => t.BytesPerToken);

    public static int ComputeBytes(Precision p) => p == Precision.F32 ? 4 : 2;
}
