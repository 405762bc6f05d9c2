using Engine.Data;
using Engine.Objectives;
using static Engine.Tests.Objectives.Hand;

namespace Engine.Tests.Objectives;

public class KtoObjectiveTests
{
    // Four unpaired rows: r = logp − ref = 1, −0.5, 1, −1.
    static readonly double[] Logp = { -10, -12, -8, -15 }, Ref = { -11, -11.5, -9, -14 };
    static readonly double[] Tokens = { 5, 4, 3, 8 }, LogitSums = { 5.0, -2.0, 1.0, 4.0 };
    static readonly bool[] Desirable = { true, false, true, false };
    const int B = 4;

    static double R(int i, bool referenceFree = false) => referenceFree ? Logp[i] : Logp[i] - Ref[i];

    static ObjectiveResult Run(KtoOptions o, double z0, out SequenceScores s)
    {
        s = Scores(Logp, Tokens, LogitSums);
        return new KtoObjective(o).Compute(s, o.ReferenceFree ? null : Vec(Ref), Desirable, z0);
    }

    static double KtoRow(int i, double beta, double z, double lD, double lU, bool referenceFree = false)
        => Desirable[i] ? lD * (1 - Sigmoid(beta * (R(i, referenceFree) - z)))
                        : lU * (1 - Sigmoid(beta * (z - R(i, referenceFree))));

    [Fact]
    public void Kto_with_z0_and_weights_matches_the_formula()
    {
        const double beta = 0.5, z0 = 0.3, lD = 1.5, lU = 0.8;
        var res = Run(new KtoOptions { Beta = beta, DesirableWeight = lD, UndesirableWeight = lU }, z0, out var s);
        Close(Mean(Enumerable.Range(0, B).Select(i => KtoRow(i, beta, z0, lD, lU))), Scalar(res.Loss));

        // d/dlogp of λ_D(1 − σ(β(r − z0))) = −λ_D β σ'(·); of λ_U(1 − σ(β(z0 − r))) = +λ_U β σ'(·); over B.
        // z0 is a plain number: no gradient reaches it.
        res.Loss.backward();
        var expected = Enumerable.Range(0, B).Select(i =>
        {
            double x = Desirable[i] ? beta * (R(i) - z0) : beta * (z0 - R(i));
            double ds = Sigmoid(x) * (1 - Sigmoid(x));
            return (Desirable[i] ? -lD * beta * ds : lU * beta * ds) / B;
        }).ToArray();
        Close(expected, Grad(s));
    }

    [Fact]
    public void Without_z0_the_reference_point_is_zero()
    {
        const double beta = 0.5;
        var res = Run(new KtoOptions { Beta = beta, UseZ0 = false }, z0: 0.3, out _);
        Close(Mean(Enumerable.Range(0, B).Select(i => KtoRow(i, beta, 0, 1, 1))), Scalar(res.Loss));
        Assert.Equal(0.0, res.Metrics.Value("kl"));
        Assert.False(new KtoObjective(new KtoOptions { UseZ0 = false }).NeedsZ0);
    }

    [Fact]
    public void Apo_zero_unpaired_ignores_z0()
    {
        const double beta = 0.5, lD = 2.0, lU = 0.5;
        var res = Run(new KtoOptions { Beta = beta, LossType = KtoLossType.ApoZeroUnpaired, DesirableWeight = lD, UndesirableWeight = lU },
                      z0: 0.7, out _);
        var expected = Mean(Enumerable.Range(0, B).Select(i =>
            Desirable[i] ? lD * (1 - Sigmoid(beta * R(i))) : lU * Sigmoid(beta * R(i))));
        Close(expected, Scalar(res.Loss));
        Assert.False(new KtoObjective(new KtoOptions { LossType = KtoLossType.ApoZeroUnpaired }).NeedsZ0);
    }

    [Fact]
    public void Reference_free_uses_the_policy_log_probs_as_rewards()
    {
        const double beta = 0.1, z0 = 0.0, lD = 1.75;
        var res = Run(new KtoOptions { Beta = beta, ReferenceFree = true, DesirableWeight = lD }, z0, out _);
        Close(Mean(Enumerable.Range(0, B).Select(i => KtoRow(i, beta, z0, lD, 1, referenceFree: true))), Scalar(res.Loss));
        Close((beta * Logp[0] + beta * Logp[2]) / 2, res.Metrics.Value("rewards/chosen"));
    }

    [Fact]
    public void Metrics_have_trl_names_and_values()
    {
        const double beta = 0.5, z0 = 0.3;
        var m = Run(new KtoOptions { Beta = beta }, z0, out _).Metrics;
        Close(z0, m.Value("kl"));
        Close(beta * (R(0) + R(2)) / 2, m.Value("rewards/chosen"));   // 0.5
        Close(beta * (R(1) + R(3)) / 2, m.Value("rewards/rejected")); // −0.375
        Close(0.5 - -0.375, m.Value("rewards/margins"));
        Close((Logp[0] + Logp[2]) / 2, m.Value("logps/chosen"));
        Close((Logp[1] + Logp[3]) / 2, m.Value("logps/rejected"));
        Close((LogitSums[0] + LogitSums[2]) / (Tokens[0] + Tokens[2]), m.Value("logits/chosen"));
        Close((LogitSums[1] + LogitSums[3]) / (Tokens[1] + Tokens[3]), m.Value("logits/rejected"));
        Assert.Equal(2.0, m.Value("count/chosen"));
        Assert.Equal(2.0, m.Value("count/rejected"));
    }

    [Fact]
    public void Merged_metrics_weigh_each_class_by_its_rows()
    {
        // Microbatch 1: two desirable rows; microbatch 2: one desirable, two undesirable.
        var o = new KtoObjective(new KtoOptions { Beta = 1.0 });
        var a = o.Compute(Scores(new[] { -1.0, -2.0 }, new[] { 1.0, 1.0 }), Vec(-2, -2), new[] { true, true }, 0.1).Metrics;
        var b = o.Compute(Scores(new[] { -3.0, -4.0, -5.0 }, new[] { 1.0, 1.0, 1.0 }), Vec(-3.5, -3, -5), new[] { true, false, false }, 0.2).Metrics;
        Assert.False(a.Contains("rewards/rejected"));
        Assert.True(double.IsNaN(a.Value("rewards/margins")));
        var m = new ObjectiveMetrics();
        m.Merge(a);
        m.Merge(b);
        // rewards: desirable 1, 0, 0.5; undesirable −1, 0.
        Close(0.5, m.Value("rewards/chosen"));
        Close(-0.5, m.Value("rewards/rejected"));
        Close(1.0, m.Value("rewards/margins"));
        Assert.Equal(3.0, m.Value("count/chosen"));
        Assert.Equal(2.0, m.Value("count/rejected"));
        Close(0.15, m.Value("kl"));
    }

    [Fact]
    public void Z0_is_the_mean_mismatched_log_ratio_clamped_at_zero()
    {
        var negative = KtoObjective.EstimateZ0(Vec(-5, -6, -7), Vec(-5.5, -5, -7.2)); // diffs 0.5, −1, 0.2
        Close(-0.1, negative.Raw);
        Assert.Equal(0.0, negative.Clamped);
        var positive = KtoObjective.EstimateZ0(Vec(-5, -6, -7), Vec(-6, -6.5, -7.1)); // diffs 1, 0.5, 0.1
        Close(1.6 / 3, positive.Raw);
        Close(1.6 / 3, positive.Clamped);
        var referenceFree = KtoObjective.EstimateZ0(Vec(-2, 1), null);
        Close(-0.5, referenceFree.Raw);
        Assert.Equal(0.0, referenceFree.Clamped);
    }

    [Fact]
    public void Z0_pairs_each_prompt_with_the_previous_rows_completion()
    {
        // TRL's rotation: (x1,y4), (x2,y1), (x3,y2), (x4,y3).
        int[] Rotation(int m) => Enumerable.Range(0, m).Select(i => MismatchedPairs.CompletionRow(i, m)).ToArray();
        Assert.Equal(new[] { 3, 0, 1, 2 }, Rotation(4));
        Assert.Equal(new[] { 1, 0 }, Rotation(2));

        // logp(y_j | x_i) tables for policy and reference; the estimate uses only the mismatched cells.
        double[,] pi = { { -1, -2, -3, -4 }, { -5, -6, -7, -8 }, { -9, -10, -11, -12 }, { -13, -14, -15, -16 } };
        double[,] rf = { { -1, -2, -3, -5 }, { -4, -6, -7, -8 }, { -9, -11, -11, -12 }, { -13, -14, -15.5, -16 } };
        var idx = Rotation(4);
        var z = KtoObjective.EstimateZ0(Vec(Enumerable.Range(0, 4).Select(i => pi[i, idx[i]]).ToArray()),
                                        Vec(Enumerable.Range(0, 4).Select(i => rf[i, idx[i]]).ToArray()));
        // Cells (0,3): −4 − −5 = 1; (1,0): −5 − −4 = −1; (2,1): −10 − −11 = 1; (3,2): −15 − −15.5 = 0.5.
        Close((1 - 1 + 1 + 0.5) / 4, z.Raw);
        Assert.Throws<EngineException>(() => MismatchedPairs.CompletionRow(0, 1));
    }

    [Fact]
    public void A_microbatch_of_one_is_rejected_when_z0_is_used()
    {
        var one = Scores(new[] { -3.0 }, new[] { 2.0 });
        var ex = Assert.Throws<EngineException>(() =>
            new KtoObjective(new KtoOptions()).Compute(one, Vec(-3), new[] { true }, 0));
        Assert.Contains("microbatch of 1", ex.Message);
        // Without z0 nothing needs a second row.
        var res = new KtoObjective(new KtoOptions { UseZ0 = false }).Compute(Scores(new[] { -3.0 }, new[] { 2.0 }), Vec(-4), new[] { true }, 0);
        Close(1 - Sigmoid(0.1 * 1), Scalar(res.Loss));
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void A_non_finite_z0_makes_the_loss_nan_for_the_non_finite_guard(double z0)
    {
        // Like any non-finite loss, the step is then skipped and counted by TrainingSession.TrainStep's guard.
        // +∞ alone would saturate the sigmoids (desirable 1, undesirable 0) into a finite loss.
        var s = Scores(Logp, Tokens);
        var res = new KtoObjective(new KtoOptions()).Compute(s, Vec(Ref), Desirable, new Z0Estimate(z0, z0));
        Assert.True(double.IsNaN(Scalar(res.Loss)));
        Assert.True(double.IsNaN(res.Metrics.Value("loss")));
        // Without z0 (apo_zero_unpaired or --no-z0) the estimate is not used, so it cannot poison the loss.
        var noZ0 = new KtoObjective(new KtoOptions { UseZ0 = false }).Compute(Scores(Logp, Tokens), Vec(Ref), Desirable, new Z0Estimate(z0, z0));
        Assert.True(double.IsFinite(Scalar(noZ0.Loss)));
    }

    [Fact]
    public void Unclamped_z0_is_reported_beside_kl()
    {
        var s = Scores(Logp, Tokens);
        var m = new KtoObjective(new KtoOptions()).Compute(s, Vec(Ref), Desirable, new Z0Estimate(-0.25, 0)).Metrics;
        Assert.Equal(0.0, m.Value("kl"));
        Assert.Equal(-0.25, m.Value("kl/unclamped"));
    }

    [Theory]
    [InlineData(1, 10, 1.0, 1.0, 10.0, 40.0 / 3)] // the paper's example: raise λ_D to 10–13.3
    [InlineData(10, 1, 1.0, 1.0, 7.5, 10.0)]      // too many desirable: raise λ_U to 7.5–10
    [InlineData(3, 2, 1.0, 1.0, 1.125, 1.5)]      // ratio 1.5 > 4/3: λ_U to 1.125–1.5
    public void Imbalance_outside_the_range_warns_with_the_minoritys_weight_range(int nD, int nU, double lD, double lU, double min, double max)
    {
        var balance = new KtoClassBalance(nD, nU, lD, lU);
        Assert.False(balance.InRange);
        Assert.NotNull(balance.Warning);
        var (lo, hi) = balance.Ratio < KtoClassBalance.Low ? balance.SuggestedDesirableWeight!.Value : balance.SuggestedUndesirableWeight!.Value;
        Close(min, lo);
        Close(max, hi);
        // Either end of the suggested range puts the ratio in [1, 4/3].
        var fixedLow = balance.Ratio < 1 ? balance with { DesirableWeight = lo } : balance with { UndesirableWeight = lo };
        Assert.True(fixedLow.InRange);
    }

    [Theory]
    [InlineData(1, 10, 11.0, 1.0)]
    [InlineData(3, 3, 1.0, 1.0)]
    [InlineData(4, 3, 1.0, 1.0)] // exactly 4/3
    [InlineData(10, 1, 1.0, 8.0)]
    public void Balanced_weights_do_not_warn(int nD, int nU, double lD, double lU)
        => Assert.Null(new KtoClassBalance(nD, nU, lD, lU).Warning);
}
