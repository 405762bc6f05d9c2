using Engine.Distributed;
using Engine.Objectives;

namespace Engine.Tests.Distributed;

/// <summary>Metrics of the ranks of a step reduce to the metrics one process would merge from all their micro-batches.</summary>
public class MetricReductionTests
{
    /// <summary>Rank 0 has both KTO classes; rank 1 only undesirable rows (no rewards/chosen), and a metric of its own.</summary>
    static ObjectiveMetrics Rank(int r)
    {
        var m = new ObjectiveMetrics();
        m.Add(MetricNames.Loss, r == 0 ? 1.25 : 0.5, r == 0 ? 2 : 3);
        m.AddTotal(MetricNames.CountChosen, r == 0 ? 2 : 0);
        m.AddTotal(MetricNames.CountRejected, r == 0 ? 1 : 3);
        if (r == 0) m.Add(MetricNames.RewardsChosen, 0.75, 2);
        m.Add(MetricNames.RewardsRejected, r == 0 ? -0.25 : -1.5, r == 0 ? 1 : 3);
        m.AddDifference(MetricNames.RewardsMargins, MetricNames.RewardsChosen, MetricNames.RewardsRejected);
        if (r == 1) m.Add("only/rank1", 9, 4);
        return m;
    }

    [Fact]
    public void TwoRanksGiveWhatOneProcessMergingBothWouldReport()
    {
        var reduced = ThreadRanks.Run(2, ranks => Rank(ranks.Rank).AcrossRanks(ranks));
        var merged = Rank(0);
        merged.Merge(Rank(1));
        foreach (var result in reduced)
        {
            Assert.Equal(merged.Names.OrderBy(n => n), result.Names.OrderBy(n => n));
            foreach (var name in merged.Names)
            {
                Assert.Equal(merged.KindOf(name), result.KindOf(name));
                Assert.Equal(merged.Value(name), result.Value(name), 12);
            }
        }
        // Hand-worked: loss (1.25 + 0.5) / 5, margins 0.75/2 − (−0.25 − 1.5)/4, counts 2 and 4.
        Assert.Equal(1.75 / 5, reduced[1].Value(MetricNames.Loss), 12);
        Assert.Equal(0.375 + 0.4375, reduced[1].Value(MetricNames.RewardsMargins), 12);
        Assert.Equal(2, reduced[1].Value(MetricNames.CountChosen));
        Assert.Equal(4, reduced[0].Value(MetricNames.CountRejected));
        Assert.Equal(9.0 / 4, reduced[0].Value("only/rank1"), 12);
    }

    [Fact]
    public void AMetricOfDifferentKindsOnTwoRanksIsAnError()
    {
        var e = Assert.Throws<InvalidOperationException>(() => ThreadRanks.Run(2, ranks =>
        {
            var m = new ObjectiveMetrics();
            if (ranks.Rank == 0) m.Add("x", 1, 1); else m.AddTotal("x", 1);
            return m.AcrossRanks(ranks);
        }));
        Assert.Contains("'x'", e.Message);
    }

    [Fact]
    public void OneProcessReturnsItsOwnMetrics()
    {
        var m = Rank(0);
        Assert.Same(m, m.AcrossRanks(SingleProcess.Instance));
    }
}
