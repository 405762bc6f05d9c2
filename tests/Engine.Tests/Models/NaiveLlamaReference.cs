using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Tests.Models;

/// <summary>
/// An independent, deliberately plain re-implementation of the supported decoders' forward in doubles (loops, no
/// tensors), written from the Hugging Face modelling code of each family: Llama/Mistral (GQA, head_dim ≠ hidden/heads,
/// linear, dynamic-NTK and llama3 RoPE, sliding windows, tied heads), Qwen2 (q/k/v biases), Qwen3 (per-head q/k RMSNorm
/// before RoPE) and Gemma 3 (√hidden-scaled embeddings, (1 + w) norms, four norms per layer, GeGLU with tanh-GELU,
/// query_pre_attn_scalar, local layers with their own RoPE base and window, final logit soft-capping).
/// </summary>
public sealed class NaiveLlamaReference
{
    readonly LlamaConfig _c;
    readonly Dictionary<string, double[]> _w;

    public NaiveLlamaReference(LlamaForCausalLM model) : this(model.Config, model) { }

    /// <param name="spec">the hyper-parameters as the test wrote them into config.json (not as Engine parsed them);
    /// the family's traits come from <see cref="LlamaConfig.Family"/> alone</param>
    public NaiveLlamaReference(LlamaConfig spec, LlamaForCausalLM model)
    {
        _c = spec;
        _w = new();
        foreach (var (name, p) in model.named_parameters())
        {
            using var f = p.detach().to(ScalarType.Float64).contiguous();
            _w[name] = f.data<double>().ToArray();
        }
        if (_c.TieWordEmbeddings) { _w["lm_head.weight"] = _w["model.embed_tokens.weight"]; }
    }

    bool Gemma => _c.Family == ModelFamily.Gemma3;
    bool QkNorm => Gemma || _c.Family == ModelFamily.Qwen3;

    /// <summary>y = W x (+ b) for W stored [out, in].</summary>
    double[] Linear(string name, double[] x)
    {
        var w = _w[name + ".weight"];
        int inDim = x.Length, outDim = w.Length / inDim;
        _w.TryGetValue(name + ".bias", out var b);
        var y = new double[outDim];
        for (int o = 0; o < outDim; o++)
        {
            double s = b?[o] ?? 0;
            for (int i = 0; i < inDim; i++) s += w[o * inDim + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    /// <summary>RMSNorm of x[offset..offset+n): Llama scales by w, Gemma by (1 + w).</summary>
    double[] RmsNorm(string name, double[] x, int offset = 0, int n = -1)
    {
        if (n < 0) n = x.Length;
        double ms = 0;
        for (int i = 0; i < n; i++) ms += x[offset + i] * x[offset + i];
        double inv = 1 / Math.Sqrt(ms / n + _c.RmsNormEps);
        var w = _w[name];
        var y = new double[n];
        for (int i = 0; i < n; i++) y[i] = x[offset + i] * inv * (Gemma ? 1 + w[i] : w[i]);
        return y;
    }

    static double GeluTanh(double g) => 0.5 * g * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (g + 0.044715 * g * g * g)));
    static double Silu(double g) => g / (1 + Math.Exp(-g));

    /// <summary>The inverse frequency of pair i for a layer (HF's rope init functions, in doubles).</summary>
    double InverseFrequency(int i, bool local, int seqLen)
    {
        int d = _c.HeadDim;
        if (local && Gemma && _c.LocalRopeTheta is double localTheta) return 1.0 / Math.Pow(localTheta, 2.0 * i / d);
        double theta = _c.RopeTheta;
        if (_c.RopeScaling == RopeScalingKind.Dynamic)
        {
            // _compute_dynamic_ntk_parameters: the base grows once the sequence outgrows max_position_embeddings.
            double len = Math.Max(seqLen, _c.MaxPositionEmbeddings);
            theta *= Math.Pow(_c.RopeScalingFactor * len / _c.MaxPositionEmbeddings - (_c.RopeScalingFactor - 1), d / (d - 2.0));
        }
        double inv = 1.0 / Math.Pow(theta, 2.0 * i / d);
        switch (_c.RopeScaling)
        {
            case RopeScalingKind.Linear:
                return inv / _c.RopeScalingFactor;
            case RopeScalingKind.Llama3:
            {
                // _compute_llama3_parameters
                double factor = _c.RopeScalingFactor, low = _c.RopeLowFreqFactor, high = _c.RopeHighFreqFactor, old = _c.RopeOriginalMaxPositions;
                double wavelen = 2 * Math.PI / inv;
                if (wavelen < old / high) return inv;
                if (wavelen > old / low) return inv / factor;
                double smooth = (old / wavelen - low) / (high - low);
                return (1 - smooth) * inv / factor + smooth * inv;
            }
            default:
                return inv;
        }
    }

    void Rope(double[] head, int offset, int pos, bool local, int seqLen)
    {
        int d = _c.HeadDim, half = d / 2;
        var rotated = new double[d];
        for (int i = 0; i < half; i++)
        {
            double angle = pos * InverseFrequency(i, local, seqLen);
            double cos = Math.Cos(angle), sin = Math.Sin(angle);
            double x1 = head[offset + i], x2 = head[offset + i + half];
            rotated[i] = x1 * cos - x2 * sin;
            rotated[i + half] = x2 * cos + x1 * sin;
        }
        Array.Copy(rotated, 0, head, offset, d);
    }

    /// <summary>Whether layer l attends through a sliding window (Mistral: all layers; Gemma 3: all but every n-th).</summary>
    bool IsSliding(int l) => _c.SlidingWindow != null && !(Gemma && (l + 1) % (_c.SlidingWindowPattern ?? 6) == 0);

    /// <summary>Logits [T][vocab] for one sequence starting at position 0.</summary>
    public double[][] Forward(int[] ids)
    {
        int h = _c.HiddenSize, T = ids.Length, hd = _c.HeadDim, nh = _c.NumHeads, nkv = _c.NumKvHeads;
        double embedScale = Gemma ? Math.Sqrt(h) : 1;
        double scale = 1 / Math.Sqrt(_c.QueryPreAttnScalar ?? hd);
        var x = ids.Select(id => _w["model.embed_tokens.weight"].Skip(id * h).Take(h).Select(v => v * embedScale).ToArray()).ToArray();
        for (int l = 0; l < _c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            bool sliding = IsSliding(l);
            var q = new double[T][]; var k = new double[T][]; var v = new double[T][];
            for (int t = 0; t < T; t++)
            {
                var n = RmsNorm(p + "input_layernorm.weight", x[t]);
                q[t] = Linear(p + "self_attn.q_proj", n);
                k[t] = Linear(p + "self_attn.k_proj", n);
                v[t] = Linear(p + "self_attn.v_proj", n);
                if (QkNorm)
                {
                    for (int a = 0; a < nh; a++) Array.Copy(RmsNorm(p + "self_attn.q_norm.weight", q[t], a * hd, hd), 0, q[t], a * hd, hd);
                    for (int a = 0; a < nkv; a++) Array.Copy(RmsNorm(p + "self_attn.k_norm.weight", k[t], a * hd, hd), 0, k[t], a * hd, hd);
                }
                for (int a = 0; a < nh; a++) Rope(q[t], a * hd, t, sliding, T);
                for (int a = 0; a < nkv; a++) Rope(k[t], a * hd, t, sliding, T);
            }
            var attnOut = new double[T][];
            for (int t = 0; t < T; t++)
            {
                attnOut[t] = new double[nh * hd];
                for (int a = 0; a < nh; a++)
                {
                    int kvHead = a / (nh / nkv);
                    var scores = new List<(int j, double s)>();
                    for (int j = 0; j <= t; j++)
                    {
                        if (sliding && t - j >= _c.SlidingWindow) continue;
                        double s = 0;
                        for (int d = 0; d < hd; d++) s += q[t][a * hd + d] * k[j][kvHead * hd + d];
                        scores.Add((j, s * scale));
                    }
                    double max = scores.Max(s => s.s);
                    double z = scores.Sum(s => Math.Exp(s.s - max));
                    foreach (var (j, s) in scores)
                    {
                        double wgt = Math.Exp(s - max) / z;
                        for (int d = 0; d < hd; d++) attnOut[t][a * hd + d] += wgt * v[j][kvHead * hd + d];
                    }
                }
            }
            for (int t = 0; t < T; t++)
            {
                var o = Linear(p + "self_attn.o_proj", attnOut[t]);
                if (Gemma) o = RmsNorm(p + "post_attention_layernorm.weight", o);
                for (int i = 0; i < h; i++) x[t][i] += o[i];
                var n2 = RmsNorm(p + (Gemma ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"), x[t]);
                var gate = Linear(p + "mlp.gate_proj", n2);
                var up = Linear(p + "mlp.up_proj", n2);
                var act = gate.Select((g, i) => (Gemma ? GeluTanh(g) : Silu(g)) * up[i]).ToArray();
                var down = Linear(p + "mlp.down_proj", act);
                if (Gemma) down = RmsNorm(p + "post_feedforward_layernorm.weight", down);
                for (int i = 0; i < h; i++) x[t][i] += down[i];
            }
        }
        return x.Select(row =>
        {
            var logits = Linear("lm_head", RmsNorm("model.norm.weight", row));
            if (_c.FinalLogitSoftcapping is double cap) logits = logits.Select(z => cap * Math.Tanh(z / cap)).ToArray();
            return logits;
        }).ToArray();
    }
}
