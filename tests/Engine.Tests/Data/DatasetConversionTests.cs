using Engine.Data;

namespace Engine.Tests.Data;

public class DatasetConversionTests
{
    static RowSource Src(int line) => new("mem.jsonl", line, line);

    static Dataset Pairs(int n) => Dataset.FromPaired("pairs.jsonl", Enumerable.Range(1, n)
        .Select(i => new PreferenceExample(ExampleText.Plain($"p{i}"), ExampleText.Plain($"good{i}"), ExampleText.Plain($"bad{i}"), Src(i))).ToList());

    static Dataset Unpaired(int n) => Dataset.FromUnpaired("kto.jsonl", Enumerable.Range(1, n)
        .Select(i => new UnpairedExample(ExampleText.Plain($"p{i}"), ExampleText.Plain($"c{i}"), i % 2 == 0, Src(i))).ToList());

    [Fact]
    public void Dpo_refuses_unpaired_data()
    {
        var e = Assert.Throws<EngineException>(() => Unpaired(4).ToPaired());
        Assert.StartsWith("kto.jsonl: unpaired data cannot train DPO", e.Message);
    }

    [Fact]
    public void Paired_data_for_kto_becomes_two_rows_per_pair_with_a_notice()
    {
        var rows = Pairs(3).ToUnpaired(out var notice);
        Assert.Equal(6, rows.Count);
        Assert.Equal(new[] { "good1", "good2", "good3", "bad1", "bad2", "bad3" }, rows.Select(r => r.Completion.Text));
        Assert.Equal(new[] { true, true, true, false, false, false }, rows.Select(r => r.Label));
        Assert.Equal(new[] { "p1", "p2", "p3", "p1", "p2", "p3" }, rows.Select(r => r.Prompt.Text));
        Assert.Equal(Src(2), rows[4].Source);
        Assert.NotNull(notice);
        Assert.Contains("3 pairs became 6 rows", notice);
    }

    [Fact]
    public void Unpaired_data_for_kto_is_unchanged_without_a_notice()
    {
        var ds = Unpaired(4);
        Assert.Same(ds.UnpairedExamples, ds.ToUnpaired(out var notice));
        Assert.Null(notice);
        Assert.Same(ds, ds.AsUnpaired(out _));
    }

    [Fact]
    public void Split_is_seeded_disjoint_and_complete()
    {
        var ds = Pairs(20);
        var (train, eval) = ds.Split(0.25, seed: 7);
        Assert.Equal(5, eval.Count);
        Assert.Equal(15, train.Count);
        var all = train.PairedExamples.Concat(eval.PairedExamples).Select(r => r.Prompt.Text).OrderBy(s => s).ToList();
        Assert.Equal(ds.PairedExamples.Select(r => r.Prompt.Text).OrderBy(s => s), all);
        // Each part keeps file order.
        Assert.Equal(train.PairedExamples.OrderBy(r => r.Source.Row), train.PairedExamples);
        var (_, again) = ds.Split(0.25, seed: 7);
        Assert.Equal(eval.PairedExamples, again.PairedExamples);
        var (_, other) = ds.Split(0.25, seed: 8);
        Assert.NotEqual(eval.PairedExamples.Select(r => r.Source.Row), other.PairedExamples.Select(r => r.Source.Row));
    }

    [Fact]
    public void Split_keeps_at_least_one_row_on_each_side_and_rejects_bad_fractions()
    {
        var (train, eval) = Pairs(3).Split(0.01, seed: 1);
        Assert.Equal((2, 1), (train.Count, eval.Count));
        Assert.Throws<EngineException>(() => Pairs(3).Split(1.0, 1));
        Assert.Throws<EngineException>(() => Pairs(1).Split(0.5, 1));
    }

    [Fact]
    public void Seeded_permutations_are_permutations_and_depend_on_seed_and_stream()
    {
        var a = SeededShuffle.Permutation(50, 42, 0);
        Assert.Equal(Enumerable.Range(0, 50), a.OrderBy(x => x));
        Assert.Equal(a, SeededShuffle.Permutation(50, 42, 0));
        Assert.NotEqual(a, SeededShuffle.Permutation(50, 42, 1));
        Assert.NotEqual(a, SeededShuffle.Permutation(50, 43, 0));
        Assert.NotEqual(Enumerable.Range(0, 50), a);
    }

    [Fact]
    public void Kto_balance_suggests_weights_from_the_paper_rule()
    {
        // alignment.md: 1 desirable per 10 undesirable → λ_U = 1, λ_D ≈ 10–13.3.
        var b = new KtoClassBalance(100, 1000);
        Assert.False(b.InRange);
        var (min, max) = b.SuggestedDesirableWeight!.Value;
        Assert.Equal(10.0, min, 9);
        Assert.Equal(13.333333333, max, 6);
        Assert.Contains("set the desirable weight to 10–13.333", b.Warning);
        Assert.Null(new KtoClassBalance(100, 1000, DesirableWeight: 12).Warning);
        Assert.Null(new KtoClassBalance(50, 50).Warning);
        // 200 desirable per 100 undesirable: λ_U in [2/(4/3), 2/1] = [1.5, 2].
        var many = new KtoClassBalance(200, 100);
        var (uMin, uMax) = many.SuggestedUndesirableWeight!.Value;
        Assert.Equal(1.5, uMin, 9);
        Assert.Equal(2.0, uMax, 9);
        Assert.Contains("set the undesirable weight to 1.5–2", many.Warning);
        Assert.Contains("no undesirable rows", new KtoClassBalance(5, 0).Warning);
    }

    [Fact]
    public void Length_stats_use_nearest_rank_percentiles()
    {
        var s = LengthStats.Of(Enumerable.Range(1, 20));
        Assert.Equal((1, 10, 19, 20), (s.Min, s.Median, s.P95, s.Max));
        Assert.Equal(10.5, s.Mean, 9);
    }
}
