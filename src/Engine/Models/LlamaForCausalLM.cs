using Engine.Util;
using Engine.Kernels;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Models;

/// <summary>
/// The Llama / Mistral decoder with its LM head. Parameter names match Hugging Face checkpoints
/// (<c>model.layers.0.self_attn.q_proj.weight</c>, <c>lm_head.weight</c>).
/// </summary>
public sealed class LlamaForCausalLM : nn.Module
{
#pragma warning disable IDE1006
    public LlamaDecoder model;
    public Projection? lm_head;
#pragma warning restore IDE1006

    public LlamaConfig Config { get; }
    public ScalarType Dtype { get; private set; }

    /// <summary>
    /// Runs one decoder layer; the default calls it directly. Activation checkpointing replaces this with a
    /// function that recomputes the layer in backward.
    /// </summary>
    public Func<DecoderLayer, Tensor, RotaryTables, Tensor?, KvCache?, Tensor>? LayerRunner { get; set; }

    /// <summary>Fused kernels or TorchSharp's composites for norms, RoPE and the MLP activation; null: <see cref="FusedKernels.Default"/>.</summary>
    public KernelChoice? Kernels { get; set; }

    public LlamaForCausalLM(LlamaConfig config, ScalarType dtype = ScalarType.Float32) : base("LlamaForCausalLM")
    {
        Config = config;
        Dtype = dtype;
        model = new LlamaDecoder(config, dtype);
        if (!config.TieWordEmbeddings) lm_head = new Projection(config.HiddenSize, config.VocabSize, dtype);
        RegisterComponents();
    }

    /// <summary>The output projection [vocab, hidden]: the embedding matrix when tied.</summary>
    public Tensor LmHeadWeight => lm_head?.weight ?? model.embed_tokens.weight;

    /// <summary>Converts every parameter to <paramref name="dtype"/> in place.</summary>
    public void ConvertTo(ScalarType dtype)
    {
        if (dtype == Dtype) return;
        // Tensor.set_ cannot change a tensor's dtype (libtorch rejects the smaller storage), so the parameters are
        // replaced: Module.to swaps every registered parameter and the fields that hold them.
        this.to(dtype);
        Dtype = dtype;
    }

    /// <summary>Initialises weights like HF (normal(0, 0.02), norms at identity) from a seeded generator.</summary>
    public void InitializeWeights(long seed, double std = 0.02)
    {
        using var noGrad = torch.no_grad();
        var gen = new torch.Generator((ulong)seed);
        foreach (var (name, p) in named_parameters())
        {
            // Norms start at their identity (w = 1, or 0 for Gemma's stored offset); biases at zero, as in HF.
            if (name.EndsWith("norm.weight")) p.fill_(Config.Norm == NormStyle.UnitOffset ? 0.0 : 1.0);
            else if (name.EndsWith(".bias")) p.zero_();
            else
            {
                using var init = torch.randn(p.shape, dtype: ScalarType.Float32, generator: gen) * std;
                p.copy_(init);
            }
        }
    }

    /// <summary>
    /// Final hidden states [B, T, hidden] (after the last norm).
    /// </summary>
    /// <param name="inputIds">[B, T] token ids</param>
    /// <param name="attentionMask">[B, T], 1 for real tokens and 0 for padding; null when there is none.
    /// Right padding needs no mask for the real positions (causality already hides later pads).</param>
    /// <param name="positionIds">[B, T]; derived from the mask and cache when null</param>
    /// <param name="cache">decoding cache; this forward's keys/values are appended</param>
    public Tensor ForwardHidden(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        using var kernels = FusedKernels.Use(Kernels ?? FusedKernels.Default);
        long b = inputIds.shape[0], t = inputIds.shape[1];
        int past = cache?.Length ?? 0;
        long s = past + t;
        var device = inputIds.device;
        var currentMask = attentionMask?.to(ScalarType.Bool);
        if (cache != null)
        {
            cache.MarkKeys(currentMask ?? torch.ones(new long[] { b, t }, dtype: ScalarType.Bool, device: device));
        }
        positionIds ??= DerivePositions(b, t, past, currentMask, cache, device);

        Tensor? keyValid = cache != null ? cache.KeyMask.narrow(1, 0, s) : currentMask;
        bool hasPadding = keyValid is not null && !keyValid.all().item<bool>();
        var masks = new Dictionary<LayerAttention, Tensor?>();
        Tensor? MaskOf(LayerAttention kind)
        {
            if (masks.TryGetValue(kind, out var mask)) return mask;
            int? window = kind == LayerAttention.Sliding ? Config.SlidingWindow : null;
            var ring = cache?.RingKeyPositions(kind, t);
            mask = ring is null
                ? BuildMask(t, past, hasPadding ? keyValid : null, window, device)
                : BuildRingMask(t, past, ring, hasPadding ? cache!.KeyMask : null, window!.Value, device);
            masks[kind] = mask;
            return mask;
        }
        var ropes = new Dictionary<RopeSpec, RotaryTables>();
        try
        {
            var x = model.embed_tokens.forward(inputIds);
            for (int i = 0; i < model.layers.Count; i++)
            {
                var spec = Config.RopeOf(i);
                if (!ropes.TryGetValue(spec, out var rope)) ropes[spec] = rope = new RotaryTables(spec, Config.HeadDim, positionIds, Dtype);
                var layer = model.layers[i];
                var mask = MaskOf(Config.AttentionOf(i));
                x = LayerRunner != null ? LayerRunner(layer, x, rope, mask, cache) : layer.Forward(x, rope, mask, cache);
            }
            cache?.Advance((int)t);
            return model.norm.forward(x).MoveToOuterDisposeScope();
        }
        finally
        {
            foreach (var rope in ropes.Values) rope.Dispose();
        }
    }

    /// <summary>Logits [.., vocab] in the compute dtype, soft-capped when the model caps them.</summary>
    public Tensor Logits(Tensor hidden)
    {
        var logits = F.linear(hidden, LmHeadWeight);
        if (Config.FinalLogitSoftcapping is not double cap) return logits;
        using var scope = NewDisposeScope();
        return StableScalars.Mul(StableScalars.Div(logits, cap).tanh(), cap).MoveToOuterDisposeScope();
    }

    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var hidden = ForwardHidden(inputIds, attentionMask, positionIds, cache);
        return Logits(hidden);
    }

    static Tensor DerivePositions(long b, long t, int past, Tensor? currentMask, KvCache? cache, Device device)
    {
        if (currentMask is null && (cache is null || past == 0))
            return torch.arange(past, past + t, dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(b, t);
        // Left padding: a token's position is the number of real tokens before it.
        var realBefore = cache != null && past > 0
            ? cache.KeyMask.narrow(1, 0, past).to(ScalarType.Int64).sum(1, keepdim: true)
            : torch.zeros(new long[] { b, 1 }, dtype: ScalarType.Int64, device: device);
        var cur = currentMask?.to(ScalarType.Int64) ?? torch.ones(new long[] { b, t }, dtype: ScalarType.Int64, device: device);
        return (realBefore + cur.cumsum(1) - 1).clamp_min(0);
    }

    /// <summary>
    /// The boolean mask [1 or B, 1, T, S] for one kind of layer over keys at positions 0 … S − 1, or null when plain
    /// causal attention is exact (no padding, no cache, the window, if any, wider than the sequence).
    /// </summary>
    static Tensor? BuildMask(long t, int past, Tensor? keyValid, int? window, Device device)
    {
        long s = past + t;
        bool windowBinds = window is int w0 && s > w0;
        if (keyValid is null && !windowBinds && !(past > 0 && t > 1))
            return past > 0 ? torch.ones(new long[] { 1, 1, t, s }, dtype: ScalarType.Bool, device: device) : null; // one query sees all keys
        var k = torch.arange(0, s, dtype: ScalarType.Int64, device: device);
        return Allowed(t, past, k, keyValid, window, device);
    }

    /// <summary>The mask over a ring cache's keys, whose positions <paramref name="ring"/> lists (−1: empty slot).</summary>
    static Tensor BuildRingMask(long t, int past, Tensor ring, Tensor? keyValidByPosition, int window, Device device)
    {
        var filled = ring >= 0;
        Tensor? valid = null;
        if (keyValidByPosition is not null)
            valid = keyValidByPosition.index_select(1, ring.clamp_min(0)) & filled.unsqueeze(0);
        var mask = Allowed(t, past, ring, valid, window, device);
        return mask & filled.view(1, 1, 1, -1);
    }

    /// <summary>Query q (positions past …) may attend key k: k ≤ q, within the window, a real token — or k = q itself,
    /// so that a padded query sees at least one key instead of turning NaN.</summary>
    static Tensor Allowed(long t, int past, Tensor keyPositions, Tensor? keyValid, int? window, Device device)
    {
        var q = torch.arange(past, past + t, dtype: ScalarType.Int64, device: device).unsqueeze(1);
        var k = keyPositions.unsqueeze(0);
        var allowed = k <= q;
        if (window is int w) allowed = allowed & ((q - k) < w);
        var full = allowed.unsqueeze(0).unsqueeze(0); // [1, 1, T, S]
        if (keyValid is not null) full = full & keyValid.unsqueeze(1).unsqueeze(1);
        return full | (k == q).unsqueeze(0).unsqueeze(0);
    }
}
