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
/// What autograd saves in one forward of Engine's decoder layer (LlamaModules.cs), tensor by tensor, so the
/// activation memory can be audited. Derived from the backward formulas of each op and checked by measurement
/// (docs/memory.md):
/// <list type="bullet">
/// <item>RmsNorm: <c>x.to(f32)</c> is saved by <c>pow</c> and by the product with rsqrt (in f32 it is the layer
/// input itself, no copy), rsqrt's result [N,1] f32, and the normalised tensor in the compute dtype (saved by the
/// product with the weight). The fp32 normalised tensor before the cast is not saved in bf16.</item>
/// <item>Linear layers save their input (q/k/v share the norm's output; gate/up share theirs).</item>
/// <item>RoPE multiplies by the constant cos/sin tables: nothing of size N is saved, the rotated q/k are.</item>
/// <item>GQA: the expand+reshape materialises k and v with all query heads; SDPA saves those copies, q, its output
/// and the fp32 log-sum-exp [B, heads, T] (the flash path, which libtorch takes on the CPU for a causal mask).
/// The output's memory layout is [B, T, heads, d], so the merge before o_proj is a view.</item>
/// <item>MLP: silu saves its input (gate output), the product saves both operands, down_proj saves the product.</item>
/// <item>Residual sums save nothing; the attention residual is saved in f32 by the second norm (it is that norm's
/// f32 input), in bf16 the norm saves its own fp32 copy instead.</item>
/// </list>
/// With the fused kernels (<see cref="KernelChoice.Fused"/>) each norm saves only its input (in the compute dtype)
/// and one fp32 inverse RMS per token, RoPE rotates q and k in place (nothing saved but the tables), and the gated
/// activation saves gate and up and recomputes the activation: the silu output and the norms' fp32/normalised
/// copies are gone.
/// </summary>
public static class LayerActivations
{
    public static IReadOnlyList<SavedTensor> PerLayer(LlamaConfig c, Precision precision, KernelChoice kernels = KernelChoice.Fused)
    {
        int s = ComputeBytes(precision);
        bool f32 = s == 4;
        if (kernels == KernelChoice.Fused) return FusedPerLayer(c, s);
        long h = c.HiddenSize, q = c.QueryDim, kv = c.KvDim, i = c.IntermediateSize;
        long kvSaved = c.NumHeads > c.NumKvHeads ? q : kv; // the expanded copies, or k/v themselves without GQA
        var list = new List<SavedTensor>();
        if (f32) list.Add(new("layer input (saved by input_layernorm's pow)", h, 4));
        list.AddRange(Norm("input_layernorm", h, f32));
        list.Add(new("q/k/v_proj input (the norm's output)", h, s));
        list.Add(new("q after RoPE (SDPA input)", q, s));
        list.Add(new("k after RoPE, expanded to all heads (SDPA input)", kvSaved, s));
        list.Add(new("v expanded to all heads (SDPA input)", kvSaved, s));
        list.Add(new("SDPA output (o_proj input, a view of it)", q, s));
        list.Add(new("SDPA log-sum-exp [B, heads, T] fp32", c.NumHeads, 4));
        if (f32) list.Add(new("attention residual h (saved by post_attention_layernorm's pow)", h, 4));
        list.AddRange(Norm("post_attention_layernorm", h, f32));
        list.Add(new("gate/up_proj input (the norm's output)", h, s));
        list.Add(new("gate_proj output (silu input)", i, s));
        list.Add(new("silu output (product operand)", i, s));
        list.Add(new("up_proj output (product operand)", i, s));
        list.Add(new("silu·up product (down_proj input)", i, s));
        return list;
    }

    static IReadOnlyList<SavedTensor> FusedPerLayer(LlamaConfig c, int s)
    {
        long h = c.HiddenSize, q = c.QueryDim, kv = c.KvDim, i = c.IntermediateSize;
        long kvSaved = c.NumHeads > c.NumKvHeads ? q : kv;
        return new List<SavedTensor>
        {
            new("input_layernorm: its input (the layer input)", h, s),
            new("input_layernorm: inverse RMS [N] fp32", 1, 4),
            new("q/k/v_proj input (the norm's output)", h, s),
            new("q rotated in place (SDPA input)", q, s),
            new("k rotated in place, expanded to all heads (SDPA input)", kvSaved, s),
            new("v expanded to all heads (SDPA input)", kvSaved, s),
            new("SDPA output (o_proj input, a view of it)", q, s),
            new("SDPA log-sum-exp [B, heads, T] fp32", c.NumHeads, 4),
            new("post_attention_layernorm: its input (the attention residual)", h, s),
            new("post_attention_layernorm: inverse RMS [N] fp32", 1, 4),
            new("gate/up_proj input (the norm's output)", h, s),
            new("gate_proj output (saved by the fused activation)", i, s),
            new("up_proj output (saved by the fused activation)", i, s),
            new("act(gate)·up (down_proj input)", i, s),
        };
    }

    static IEnumerable<SavedTensor> Norm(string name, long h, bool f32)
    {
        if (!f32) yield return new($"{name}: fp32 copy of its input", h, 4);
        yield return new($"{name}: rsqrt of the mean square [N, 1] fp32", 1, 4);
        yield return new($"{name}: normalised input (weight product operand)", h, f32 ? 4 : 2);
    }

    /// <summary>Bytes per token saved by one layer without checkpointing.</summary>
    public static long BytesPerToken(LlamaConfig c, Precision precision, KernelChoice kernels = KernelChoice.Fused) =>
        PerLayer(c, precision, kernels).Sum(t => t.BytesPerToken);

    public static int ComputeBytes(Precision p) => p == Precision.F32 ? 4 : 2;
}
