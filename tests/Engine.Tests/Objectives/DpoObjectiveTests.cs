using Engine.Objectives;
using static Engine.Tests.Objectives.Hand;

namespace Engine.Tests.Objectives;

public class DpoObjectiveTests
{
    // Three preference pairs: policy and reference log-prob sums, completion lengths and logit sums.
    static readonly double[] Pc = { -12.0, -20.5, -7.25 }, Pr = { -15.0, -18.0, -9.0 };
    static readonly double[] Rc = { -13.0, -19.0, -8.0 }, Rr = { -14.0, -19.5, -8.5 };
    static readonly double[] Tc = { 4, 10, 5 }, Tr = { 6, 8, 3 };
    static readonly double[] Lc = { -4.0, 12.0, 2.5 }, Lr = { 3.0, -8.0, 1.5 };
    const int B = 3;

    static (SequenceScores c, SequenceScores r) Inputs() => (Scores(Pc, Tc, Lc), Scores(Pr, Tr, Lr));

    static double[] H(bool referenceFree = false) => Enumerable.Range(0, B)
        .Select(i => referenceFree ? Pc[i] - Pr[i] : (Pc[i] - Rc[i]) - (Pr[i] - Rr[i])).ToArray();

    static ObjectiveResult Run(DpoOptions o, out SequenceScores c, out SequenceScores r)
    {
        (c, r) = Inputs();
        return new DpoObjective(o).Compute(c, r, o.ReferenceFree ? null : Vec(Rc), o.ReferenceFree ? null : Vec(Rr));
    }

    [Fact]
    public void Sigmoid_loss_and_gradient_match_the_formula()
    {
        const double beta = 0.1;
        var res = Run(new DpoOptions { Beta = beta }, out var c, out var r);
        var h = H();
        Close(Mean(h.Select(x => -LogSigmoid(beta * x))), Scalar(res.Loss), what: "loss");

        // d/d logp_w = −β·σ(−βh)/B and d/d logp_l = +β·σ(−βh)/B.
        res.Loss.backward();
        Close(h.Select(x => -beta * Sigmoid(-beta * x) / B).ToArray(), Grad(c), what: "dL/dlogp_chosen");
        Close(h.Select(x => beta * Sigmoid(-beta * x) / B).ToArray(), Grad(r), what: "dL/dlogp_rejected");
    }

    [Fact]
    public void Anchor_values_at_zero_margin()
    {
        // Policy equal to the reference: h = 0. sigmoid: ln 2 (whatever ε); hinge: 1; ipo: (1/(2β))² = 25 at β = 0.1.
        double[] same = { -5, -6 }, len = { 2, 3 };
        foreach (var (opts, expected) in new (DpoOptions, double)[]
                 {
                     (new DpoOptions(), 0.6931471805599453),
                     (new DpoOptions { LabelSmoothing = 0.3 }, 0.6931471805599453),
                     (new DpoOptions { LossType = DpoLossType.Hinge }, 1.0),
                     (new DpoOptions { LossType = DpoLossType.Ipo }, 25.0),
                 })
        {
            var res = new DpoObjective(opts).Compute(Scores(same, len), Scores(same, len), Vec(same), Vec(same));
            Close(expected, Scalar(res.Loss), what: opts.LossType.ToString());
        }
    }

    [Fact]
    public void Label_smoothing_mixes_in_the_flipped_label()
    {
        const double beta = 0.2, eps = 0.2;
        var res = Run(new DpoOptions { Beta = beta, LabelSmoothing = eps }, out var c, out _);
        var h = H();
        Close(Mean(h.Select(x => -(1 - eps) * LogSigmoid(beta * x) - eps * LogSigmoid(-beta * x))), Scalar(res.Loss));
        // d/d logp_w of −(1−ε)logσ(βh) − ε logσ(−βh) = β(−(1−ε)σ(−βh) + εσ(βh)), over B.
        res.Loss.backward();
        Close(h.Select(x => beta * (-(1 - eps) * Sigmoid(-beta * x) + eps * Sigmoid(beta * x)) / B).ToArray(), Grad(c));
    }

    [Fact]
    public void Robust_loss_is_the_unbiased_noisy_label_estimator()
    {
        const double beta = 0.1, eps = 0.2;
        var res = Run(new DpoOptions { Beta = beta, LossType = DpoLossType.Robust, LabelSmoothing = eps }, out _, out _);
        Close(Mean(H().Select(x => ((1 - eps) * -LogSigmoid(beta * x) - eps * -LogSigmoid(-beta * x)) / (1 - 2 * eps))),
              Scalar(res.Loss));
    }

    [Fact]
    public void Hinge_loss()
    {
        const double beta = 0.6;
        var res = Run(new DpoOptions { Beta = beta, LossType = DpoLossType.Hinge }, out var c, out _);
        var h = H(); // h = 2, −3, 1.25, so β·h = 1.2, −1.8, 0.75: the first pair is past the margin (no loss, no gradient)
        Close(Mean(h.Select(x => Math.Max(0, 1 - beta * x))), Scalar(res.Loss));
        res.Loss.backward();
        Close(h.Select(x => 1 - beta * x > 0 ? -beta / B : 0.0).ToArray(), Grad(c));
    }

    [Fact]
    public void Ipo_uses_per_token_averages_without_beta_inside()
    {
        const double beta = 0.1;
        var res = Run(new DpoOptions { Beta = beta, LossType = DpoLossType.Ipo }, out var c, out _);
        var d = Enumerable.Range(0, B).Select(i => (Pc[i] / Tc[i] - Rc[i] / Tc[i]) - (Pr[i] / Tr[i] - Rr[i] / Tr[i])).ToArray();
        Close(Mean(d.Select(x => Math.Pow(x - 1 / (2 * beta), 2))), Scalar(res.Loss), rel: 1e-5);
        res.Loss.backward();
        Close(Enumerable.Range(0, B).Select(i => 2 * (d[i] - 1 / (2 * beta)) / (B * Tc[i])).ToArray(), Grad(c));
        // TRL reports IPO's rewards and logps from the averaged log-probs.
        Close(Mean(Enumerable.Range(0, B).Select(i => beta * (Pc[i] - Rc[i]) / Tc[i])), res.Metrics.Value("rewards/chosen"));
        Close(Mean(Enumerable.Range(0, B).Select(i => Pc[i] / Tc[i])), res.Metrics.Value("logps/chosen"));
    }

    [Fact]
    public void Reference_free_treats_the_reference_as_zero()
    {
        const double beta = 0.1;
        var res = Run(new DpoOptions { Beta = beta, ReferenceFree = true }, out _, out _);
        Close(Mean(H(referenceFree: true).Select(x => -LogSigmoid(beta * x))), Scalar(res.Loss));
        Close(Mean(Pc.Select(x => beta * x)), res.Metrics.Value("rewards/chosen"));
        Close(Mean(Pr.Select(x => beta * x)), res.Metrics.Value("rewards/rejected"));
    }

    [Fact]
    public void Rpo_adds_the_per_token_nll_of_the_chosen()
    {
        const double beta = 0.1, alpha = 0.5;
        var res = Run(new DpoOptions { Beta = beta, RpoAlpha = alpha }, out var c, out _);
        double nll = -Pc.Sum() / Tc.Sum(); // 39.75 / 19
        Close(Mean(H().Select(x => -LogSigmoid(beta * x))) + alpha * nll, Scalar(res.Loss));
        Close(nll, res.Metrics.Value("nll_loss"));
        res.Loss.backward();
        Close(H().Select(x => -beta * Sigmoid(-beta * x) / B - alpha / Tc.Sum()).ToArray(), Grad(c));
    }

    [Fact]
    public void Metrics_have_trl_names_and_values()
    {
        const double beta = 0.1;
        var m = Run(new DpoOptions { Beta = beta }, out _, out _).Metrics;
        var cr = Enumerable.Range(0, B).Select(i => beta * (Pc[i] - Rc[i])).ToArray(); // 0.1, −0.15, 0.075
        var rr = Enumerable.Range(0, B).Select(i => beta * (Pr[i] - Rr[i])).ToArray(); // −0.1, 0.15, −0.05
        Assert.Equal(new[] { "loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                             "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected" }, m.Names);
        Close(Mean(cr), m.Value("rewards/chosen"));
        Close(Mean(rr), m.Value("rewards/rejected"));
        Close(2.0 / 3.0, m.Value("rewards/accuracies"));
        Close(Mean(cr) - Mean(rr), m.Value("rewards/margins"));
        Close(Mean(Pc), m.Value("logps/chosen"));
        Close(Mean(Pr), m.Value("logps/rejected"));
        Close(Lc.Sum() / Tc.Sum(), m.Value("logits/chosen"));   // 10.5 / 19
        Close(Lr.Sum() / Tr.Sum(), m.Value("logits/rejected")); // −3.5 / 17
        Assert.False(m.Contains("nll_loss"));
    }

    [Fact]
    public void Merged_microbatch_metrics_equal_the_whole_batch()
    {
        var o = new DpoObjective(new DpoOptions());
        var first = o.Compute(Scores(Pc[..1], Tc[..1], Lc[..1]), Scores(Pr[..1], Tr[..1], Lr[..1]), Vec(Rc[..1]), Vec(Rr[..1]));
        var rest = o.Compute(Scores(Pc[1..], Tc[1..], Lc[1..]), Scores(Pr[1..], Tr[1..], Lr[1..]), Vec(Rc[1..]), Vec(Rr[1..]));
        var merged = new ObjectiveMetrics();
        merged.Merge(first.Metrics);
        merged.Merge(rest.Metrics);
        Close(Mean(H().Select(x => -LogSigmoid(0.1 * x))), merged.Value("loss"));
        Close(Lc.Sum() / Tc.Sum(), merged.Value("logits/chosen"));
        Close(2.0 / 3.0, merged.Value("rewards/accuracies"));
    }

    [Fact]
    public void Accuracy_counts_ties_as_wrong()
    {
        double[] p = { -5 }, t = { 2 };
        var m = new DpoObjective(new DpoOptions()).Compute(Scores(p, t), Scores(p, t), Vec(-5), Vec(-5)).Metrics;
        Assert.Equal(0.0, m.Value("rewards/accuracies"));
    }

    [Theory]
    [InlineData(DpoLossType.Robust, 0.5)]
    [InlineData(DpoLossType.Sigmoid, 0.7)]
    [InlineData(DpoLossType.Hinge, 0.1)]
    [InlineData(DpoLossType.Ipo, 0.1)]
    public void Invalid_label_smoothing_is_rejected(DpoLossType type, double eps)
    {
        var ex = Assert.Throws<EngineException>(() => new DpoObjective(new DpoOptions { LossType = type, LabelSmoothing = eps }));
        Assert.Contains("label smoothing", ex.Message);
    }

    [Fact]
    public void Bad_beta_and_missing_reference_are_rejected()
    {
        Assert.Throws<EngineException>(() => new DpoObjective(new DpoOptions { Beta = 0 }));
        var (c, r) = Inputs();
        Assert.Throws<ArgumentException>(() => new DpoObjective(new DpoOptions()).Compute(c, r, null, null));
    }

    [Fact]
    public void Ipo_rejects_a_completion_without_tokens()
    {
        var ex = Assert.Throws<EngineException>(() => new DpoObjective(new DpoOptions { LossType = DpoLossType.Ipo })
            .Compute(Scores(new[] { -1.0 }, new[] { 0.0 }), Scores(new[] { -1.0 }, new[] { 1.0 }), Vec(-1), Vec(-1)));
        Assert.Contains("no completion tokens", ex.Message);
    }
}
