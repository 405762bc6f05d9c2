using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Tests.Models;

/// <summary>
/// An independent, deliberately plain re-implementation of the Llama/Mistral forward in doubles (loops, no
/// tensors), used as the oracle for configurations the shared reference model does not cover:
/// GQA ratios, head_dim ≠ hidden/heads, linear RoPE scaling, sliding windows, untied heads.
/// </summary>
public sealed class NaiveLlamaReference
{
    readonly LlamaConfig _c;
    readonly Dictionary<string, double[]> _w;
    readonly Dictionary<string, long[]> _shape;

    public NaiveLlamaReference(LlamaForCausalLM model)
    {
        _c = model.Config;
        _w = new();
        _shape = new();
        foreach (var (name, p) in model.named_parameters())
        {
            using var f = p.detach().to(ScalarType.Float64).contiguous();
            _w[name] = f.data<double>().ToArray();
            _shape[name] = p.shape;
        }
        if (_c.TieWordEmbeddings) { _w["lm_head.weight"] = _w["model.embed_tokens.weight"]; }
    }

    /// <summary>y = W x for W stored [out, in].</summary>
    double[] MatVec(string name, double[] x)
    {
        var w = _w[name];
        int inDim = x.Length, outDim = w.Length / inDim;
        var y = new double[outDim];
        for (int o = 0; o < outDim; o++)
        {
            double s = 0;
            for (int i = 0; i < inDim; i++) s += w[o * inDim + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    double[] RmsNorm(string name, double[] x)
    {
        double ms = x.Sum(v => v * v) / x.Length;
        double inv = 1 / Math.Sqrt(ms + _c.RmsNormEps);
        return x.Select((v, i) => v * inv * _w[name][i]).ToArray();
    }

    void Rope(double[] head, int offset, int pos)
    {
        int d = _c.HeadDim, half = d / 2;
        double p = _c.RopeScaling == RopeScalingKind.Linear ? pos / _c.RopeScalingFactor : pos;
        var rotated = new double[d];
        for (int i = 0; i < half; i++)
        {
            double freq = 1.0 / Math.Pow(_c.RopeTheta, 2.0 * i / d);
            double cos = Math.Cos(p * freq), sin = Math.Sin(p * freq);
            double x1 = head[offset + i], x2 = head[offset + i + half];
            rotated[i] = x1 * cos - x2 * sin;
            rotated[i + half] = x2 * cos + x1 * sin;
        }
        Array.Copy(rotated, 0, head, offset, d);
    }

    /// <summary>Logits [T][vocab] for one sequence starting at position 0.</summary>
    public double[][] Forward(int[] ids)
    {
        int h = _c.HiddenSize, T = ids.Length, hd = _c.HeadDim, nh = _c.NumHeads, nkv = _c.NumKvHeads;
        var x = ids.Select(id => _w["model.embed_tokens.weight"].Skip(id * h).Take(h).ToArray()).ToArray();
        for (int l = 0; l < _c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var q = new double[T][]; var k = new double[T][]; var v = new double[T][];
            for (int t = 0; t < T; t++)
            {
                var n = RmsNorm(p + "input_layernorm.weight", x[t]);
                q[t] = MatVec(p + "self_attn.q_proj.weight", n);
                k[t] = MatVec(p + "self_attn.k_proj.weight", n);
                v[t] = MatVec(p + "self_attn.v_proj.weight", n);
                for (int a = 0; a < nh; a++) Rope(q[t], a * hd, t);
                for (int a = 0; a < nkv; a++) Rope(k[t], a * hd, t);
            }
            for (int t = 0; t < T; t++)
            {
                var attnOut = new double[nh * hd];
                for (int a = 0; a < nh; a++)
                {
                    int kvHead = a / (nh / nkv);
                    var scores = new List<(int j, double s)>();
                    for (int j = 0; j <= t; j++)
                    {
                        if (_c.SlidingWindow is int w && t - j >= w) continue;
                        double s = 0;
                        for (int d = 0; d < hd; d++) s += q[t][a * hd + d] * k[j][kvHead * hd + d];
                        scores.Add((j, s / Math.Sqrt(hd)));
                    }
                    double max = scores.Max(s => s.s);
                    double z = scores.Sum(s => Math.Exp(s.s - max));
                    foreach (var (j, s) in scores)
                    {
                        double wgt = Math.Exp(s - max) / z;
                        for (int d = 0; d < hd; d++) attnOut[a * hd + d] += wgt * v[j][kvHead * hd + d];
                    }
                }
                var o = MatVec(p + "self_attn.o_proj.weight", attnOut);
                for (int i = 0; i < h; i++) x[t][i] += o[i];
                var n2 = RmsNorm(p + "post_attention_layernorm.weight", x[t]);
                var gate = MatVec(p + "mlp.gate_proj.weight", n2);
                var up = MatVec(p + "mlp.up_proj.weight", n2);
                var act = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
                var down = MatVec(p + "mlp.down_proj.weight", act);
                for (int i = 0; i < h; i++) x[t][i] += down[i];
            }
        }
        return x.Select(row => MatVec("lm_head.weight", RmsNorm("model.norm.weight", row))).ToArray();
    }
}
