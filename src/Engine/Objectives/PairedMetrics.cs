using static TorchSharp.torch;

namespace Engine.Objectives;

/// <summary>The metrics TRL logs for every paired objective (DPO, ORPO, SimPO/CPO), from detached values.</summary>
internal static class PairedMetrics
{
    /// <param name="chosenRewards">Per-pair reward of the chosen completion as the method defines it.</param>
    /// <param name="chosenLogps">Per-pair log-probs as the method reports them (sums, or per-token means).</param>
    public static void Add(ObjectiveMetrics m, Tensor chosenRewards, Tensor rejectedRewards,
                           Tensor chosenLogps, Tensor rejectedLogps, SequenceScores chosen, SequenceScores rejected)
    {
        var cr = TensorValues.ToDoubles(chosenRewards);
        var rr = TensorValues.ToDoubles(rejectedRewards);
        int n = cr.Length;
        double accurate = 0, margin = 0;
        for (int i = 0; i < n; i++)
        {
            if (cr[i] > rr[i]) accurate += 1;
            margin += cr[i] - rr[i];
        }
        m.Add(MetricNames.RewardsChosen, TensorValues.Sum(cr), n);
        m.Add(MetricNames.RewardsRejected, TensorValues.Sum(rr), n);
        m.Add(MetricNames.RewardsAccuracies, accurate, n);
        m.Add(MetricNames.RewardsMargins, margin, n);
        m.Add(MetricNames.LogpsChosen, TensorValues.Sum(TensorValues.ToDoubles(chosenLogps)), n);
        m.Add(MetricNames.LogpsRejected, TensorValues.Sum(TensorValues.ToDoubles(rejectedLogps)), n);
        AddLogits(m, MetricNames.LogitsChosen, chosen, null);
        AddLogits(m, MetricNames.LogitsRejected, rejected, null);
    }

    /// <summary>Mean raw logit over completion tokens and vocabulary: ΣLogitSum / ΣTokenCount over the rows
    /// selected by <paramref name="rows"/> (all when null).</summary>
    public static void AddLogits(ObjectiveMetrics m, string name, SequenceScores scores, bool[]? rows)
    {
        var sums = TensorValues.ToDoubles(scores.LogitSum);
        var counts = TensorValues.ToDoubles(scores.TokenCount);
        double s = 0, c = 0;
        for (int i = 0; i < sums.Length; i++)
        {
            if (rows != null && !rows[i]) continue;
            s += sums[i];
            c += counts[i];
        }
        m.Add(name, s, c);
    }

    /// <summary>Mean per-token NLL over all completion tokens of <paramref name="scores"/>, as TRL's
    /// cross-entropy over the chosen rows (token-weighted, not a mean of per-sequence means).</summary>
    public static Tensor TokenMeanNll(SequenceScores scores, string what)
    {
        double tokens = TensorValues.Sum(TensorValues.ToDoubles(scores.TokenCount));
        if (!(tokens > 0)) throw new EngineException($"{what} has no completion tokens: the NLL term is undefined");
        return -scores.LogpSum.sum() / (float)tokens;
    }
}
