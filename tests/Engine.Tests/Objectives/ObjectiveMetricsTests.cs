using Engine.Objectives;

namespace Engine.Tests.Objectives;

public class ObjectiveMetricsTests
{
    [Fact]
    public void Means_totals_and_differences_merge_exactly()
    {
        var a = new ObjectiveMetrics();
        a.Add("x", 3, 2);
        a.AddTotal("n", 2);
        a.AddDifference("d", "x", "y");
        var b = new ObjectiveMetrics();
        b.Add("x", 1, 2);
        b.Add("y", 5, 5);
        b.AddTotal("n", 3);
        a.Merge(b);
        Assert.Equal(1.0, a.Value("x"));     // (3 + 1) / (2 + 2)
        Assert.Equal(5.0, a.Value("n"));     // total
        Assert.Equal(0.0, a.Value("d"));     // 1 − 1
        Assert.Equal(new[] { "x", "n", "d", "y" }, a.Names);
        Assert.Equal(MetricKind.Total, a.KindOf("n"));
    }

    [Fact]
    public void Non_finite_values_are_flagged()
    {
        var m = new ObjectiveMetrics();
        m.Add("logits/chosen", double.NegativeInfinity, 3);
        m.Add("loss", 1.5, 3);
        Assert.Equal(new[] { "logits/chosen" }, m.NonFiniteNames);
        Assert.Contains("[NON-FINITE]", m.Format("logits/chosen"));
        Assert.Equal("loss=0.5", m.Format("loss"));
        Assert.Contains("logits/chosen=-Infinity [NON-FINITE]", m.ToString());
    }

    [Fact]
    public void Unknown_names_and_kind_clashes_throw()
    {
        var m = new ObjectiveMetrics();
        m.Add("x", 1, 1);
        Assert.Throws<KeyNotFoundException>(() => m.Value("nope"));
        Assert.Throws<InvalidOperationException>(() => m.AddTotal("x", 1));
    }
}
