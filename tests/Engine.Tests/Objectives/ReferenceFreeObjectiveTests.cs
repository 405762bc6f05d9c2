using Engine.Objectives;
using static Engine.Tests.Objectives.Hand;

namespace Engine.Tests.Objectives;

/// <summary>The objectives that need no reference model: SFT, ORPO, SimPO.</summary>
public class ReferenceFreeObjectiveTests
{
    // Per-token averages: chosen −0.5, −2; rejected −1.5, −2.5.
    static readonly double[] Pc = { -2.0, -6.0 }, Tc = { 4, 3 }, Lc = { 8.0, -3.0 };
    static readonly double[] Pr = { -9.0, -5.0 }, Tr = { 6, 2 }, Lr = { 1.0, 2.0 };
    const int B = 2;

    static double Avg(double[] sums, double[] counts, int i) => sums[i] / counts[i];
    static double LogOdds(double l) => l - Math.Log(1 - Math.Exp(l));

    [Fact]
    public void Sft_is_the_per_token_nll_over_the_microbatch()
    {
        var s = Scores(new[] { -12.0, -3.0 }, new[] { 4.0, 2.0 });
        var res = SftObjective.Compute(s);
        Close(15.0 / 6.0, Scalar(res.Loss)); // token-weighted: (12 + 3) / (4 + 2), not (3 + 1.5) / 2
        res.Loss.backward();
        Close(new[] { -1.0 / 6, -1.0 / 6 }, Grad(s));
        Close(2.5, res.Metrics.Value("loss"));
        Assert.Equal(6.0, res.Metrics.Value("num_tokens"));
    }

    [Fact]
    public void Sft_loss_merges_token_weighted_across_microbatches()
    {
        var m = new ObjectiveMetrics();
        m.Merge(SftObjective.Compute(Scores(new[] { -12.0 }, new[] { 4.0 })).Metrics);
        m.Merge(SftObjective.Compute(Scores(new[] { -3.0 }, new[] { 2.0 })).Metrics);
        Close(2.5, m.Value("loss"));
        Assert.Equal(6.0, m.Value("num_tokens"));
    }

    [Fact]
    public void Orpo_is_nll_minus_lambda_log_sigmoid_of_the_log_odds_ratio()
    {
        const double lambda = 0.25;
        var c = Scores(Pc, Tc, Lc);
        var r = Scores(Pr, Tr, Lr);
        var res = new OrpoObjective(new OrpoOptions { Lambda = lambda }).Compute(c, r);
        var lo = Enumerable.Range(0, B).Select(i => LogOdds(Avg(Pc, Tc, i)) - LogOdds(Avg(Pr, Tr, i))).ToArray();
        double nll = -Pc.Sum() / Tc.Sum(); // 8 / 7
        Close(nll - lambda * Mean(lo.Select(LogSigmoid)), Scalar(res.Loss));

        var m = res.Metrics;
        Close(nll, m.Value("nll_loss"));
        Close(Mean(lo.Select(LogSigmoid)), m.Value("log_odds_ratio"));
        Close(Mean(lo), m.Value("log_odds_chosen"));
        Close(lambda * Mean(new[] { -0.5, -2.0 }), m.Value("rewards/chosen"));
        Close(lambda * Mean(new[] { -1.5, -2.5 }), m.Value("rewards/rejected"));
        Close(1.0, m.Value("rewards/accuracies"));
        Close(Mean(new[] { -0.5, -2.0 }), m.Value("logps/chosen"));
        Close(Lc.Sum() / Tc.Sum(), m.Value("logits/chosen"));

        // d/dLogpSum_c[i] = −1/ΣT_c − (λ/B)·σ(−lo_i)·(1/(1 − e^ℓ_i))/T_c[i]   (d logodds/dℓ = 1/(1 − e^ℓ)).
        res.Loss.backward();
        var expected = Enumerable.Range(0, B).Select(i =>
            -1 / Tc.Sum() - lambda / B * Sigmoid(-lo[i]) / (1 - Math.Exp(Avg(Pc, Tc, i))) / Tc[i]).ToArray();
        Close(expected, Grad(c));
    }

    [Fact]
    public void Simpo_uses_length_normalised_rewards_and_a_target_margin()
    {
        const double beta = 2.0, gamma = 1.0;
        var c = Scores(Pc, Tc, Lc);
        var r = Scores(Pr, Tr, Lr);
        var res = new SimpoObjective(new SimpoOptions { Beta = beta, Gamma = gamma }).Compute(c, r);
        var h = Enumerable.Range(0, B).Select(i => beta * Avg(Pc, Tc, i) - beta * Avg(Pr, Tr, i) - gamma).ToArray(); // 1, 0
        Close(Mean(h.Select(x => -LogSigmoid(x))), Scalar(res.Loss));
        res.Loss.backward();
        Close(Enumerable.Range(0, B).Select(i => -beta * Sigmoid(-h[i]) / (B * Tc[i])).ToArray(), Grad(c));
        Close(beta * Mean(new[] { -0.5, -2.0 }), res.Metrics.Value("rewards/chosen"));
        Close(beta * Mean(new[] { -1.5, -2.5 }), res.Metrics.Value("rewards/rejected"));
        Close(Lr.Sum() / Tr.Sum(), res.Metrics.Value("logits/rejected"));
    }

    [Fact]
    public void Simpo_with_zero_margin_at_equal_scores_is_ln2()
    {
        var s = new SimpoObjective(new SimpoOptions { Gamma = 0 }).Compute(Scores(new[] { -4.0 }, new[] { 2.0 }), Scores(new[] { -6.0 }, new[] { 3.0 }));
        Close(Math.Log(2), Scalar(s.Loss));
    }

    [Fact]
    public void Bad_options_are_rejected()
    {
        Assert.Throws<EngineException>(() => new OrpoObjective(new OrpoOptions { Lambda = -1 }));
        Assert.Throws<EngineException>(() => new SimpoObjective(new SimpoOptions { Beta = 0 }));
        Assert.Throws<EngineException>(() => new SimpoObjective(new SimpoOptions { Gamma = double.NaN }));
    }
}
