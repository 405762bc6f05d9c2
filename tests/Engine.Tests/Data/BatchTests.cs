using Engine.Data;

namespace Engine.Tests.Data;

public class BatchTests
{
    const long Pad = 0, Ignore = SequenceBatch.IgnoreIndex;

    static long[][] Rows(torch.Tensor t)
    {
        var flat = t.data<long>().ToArray();
        int b = (int)t.shape[0], n = (int)t.shape[1];
        return Enumerable.Range(0, b).Select(r => flat[(r * n)..((r + 1) * n)]).ToArray();
    }

    static TokenizedPair P(int id) => new([1, 100 + id], [200 + id, 2], [300 + id, 301 + id, 2]);

    [Fact]
    public void Sequences_are_right_padded_with_labels_only_on_completions()
    {
        using var batch = SequenceBatch.Build(new List<(int[], int[])> { ([1, 5], [6, 7]), ([1], [8]) }, Pad);
        Assert.Equal(new long[] { 2, 4 }, batch.InputIds.shape);
        Assert.Equal(torch.ScalarType.Int64, batch.InputIds.dtype);
        Assert.Equal(new[] { new long[] { 1, 5, 6, 7 }, new long[] { 1, 8, Pad, Pad } }, Rows(batch.InputIds));
        Assert.Equal(new[] { new[] { Ignore, Ignore, 6, 7 }, new[] { Ignore, 8, Ignore, Ignore } }, Rows(batch.Labels));
        Assert.Equal(new[] { new long[] { 1, 1, 1, 1 }, new long[] { 1, 1, 0, 0 } }, Rows(batch.AttentionMask));
        Assert.Equal((2, 4, 3L), (batch.Rows, batch.Length, batch.CompletionTokens));
    }

    [Fact]
    public void Paired_batch_holds_chosen_rows_then_rejected_rows()
    {
        var it = new PairedBatchIterator(new[] { P(1), P(2) }, microBatchSize: 2, seed: 0, padId: Pad, shuffle: false);
        using var batch = it.Batches(epochs: 1).Single();
        Assert.Equal(2, batch.Pairs);
        Assert.Equal(new[]
        {
            new long[] { 1, 101, 201, 2, Pad },
            new long[] { 1, 102, 202, 2, Pad },
            new long[] { 1, 101, 301, 302, 2 },
            new long[] { 1, 102, 302, 303, 2 },
        }, Rows(batch.Sequences.InputIds));
        Assert.Equal(new[] { Ignore, Ignore, 302, 303, 2 }, Rows(batch.Sequences.Labels)[3]);
    }

    [Fact]
    public void Paired_epochs_visit_every_pair_once_in_a_seeded_order_that_changes_per_epoch()
    {
        var pairs = Enumerable.Range(0, 10).Select(P).ToList();
        var it = new PairedBatchIterator(pairs, microBatchSize: 4, seed: 5, padId: Pad);
        Assert.Equal(3, it.BatchesPerEpoch); // 4 + 4 + 2: the last partial batch is kept
        var e0 = it.EpochBatches(0);
        Assert.Equal(new[] { 4, 4, 2 }, e0.Select(b => b.Length));
        Assert.Equal(Enumerable.Range(0, 10), e0.SelectMany(b => b).OrderBy(i => i));
        Assert.NotEqual(e0.SelectMany(b => b), it.EpochBatches(1).SelectMany(b => b));
        var again = new PairedBatchIterator(pairs, microBatchSize: 4, seed: 5, padId: Pad);
        Assert.Equal(e0.SelectMany(b => b), again.EpochBatches(0).SelectMany(b => b));
        var dropLast = new PairedBatchIterator(pairs, microBatchSize: 4, seed: 5, padId: Pad, dropLast: true);
        Assert.Equal(2, dropLast.BatchesPerEpoch);
    }

    [Fact]
    public void Resuming_at_a_position_draws_the_same_batches_as_a_straight_run()
    {
        var pairs = Enumerable.Range(0, 7).Select(P).ToList();
        var it = new PairedBatchIterator(pairs, microBatchSize: 3, seed: 11, padId: Pad);
        var straight = it.Batches(epochs: 3).Select(b => { using (b) return (b.Position, b.Next, Rows(b.Sequences.InputIds)); }).ToList();
        Assert.Equal(9, straight.Count);
        var resumeAt = straight[4].Position;
        Assert.Equal(new DataPosition(1, 1), resumeAt);
        Assert.Equal(resumeAt, straight[3].Next);
        var resumed = new PairedBatchIterator(pairs, microBatchSize: 3, seed: 11, padId: Pad)
            .Batches(epochs: 3, start: resumeAt).Select(b => { using (b) return (b.Position, b.Next, Rows(b.Sequences.InputIds)); }).ToList();
        Assert.Equal(straight.Skip(4).Select(s => s.Position), resumed.Select(r => r.Position));
        for (int i = 0; i < resumed.Count; i++) Assert.Equal(straight[4 + i].Item3, resumed[i].Item3);
        // The end of an epoch resumes at the next one; a position past the data is an error.
        Assert.Equal(new DataPosition(2, 0), straight[5].Next);
        Assert.Equal(straight[6].Position, it.Batches(3, new DataPosition(1, 3)).First().Position);
        Assert.Throws<EngineException>(() => it.Batches(3, new DataPosition(1, 4)).First());
    }

    static TokenizedUnpaired U(int id, bool desirable = true) => new([1, 100 + id], [200 + id, 2], desirable);

    [Fact]
    public void Kto_mismatched_rows_rotate_completions_by_one_within_the_microbatch()
    {
        // Rows (x1,y1),(x2,y2),(x3,y3) → mismatched (x1,y3),(x2,y1),(x3,y2), TRL's _get_kl_dataset.
        var rows = new[] { U(1, true), U(2, false), U(3, true) };
        var it = new UnpairedBatchIterator(rows, microBatchSize: 3, seed: 0, padId: Pad, maxLength: null, shuffle: false);
        using var batch = it.Batches(epochs: 1).Single();
        Assert.Equal(new[] { new long[] { 1, 101, 201, 2 }, new long[] { 1, 102, 202, 2 }, new long[] { 1, 103, 203, 2 } }, Rows(batch.Sequences.InputIds));
        Assert.Equal(new[] { new long[] { 1, 101, 203, 2 }, new long[] { 1, 102, 201, 2 }, new long[] { 1, 103, 202, 2 } }, Rows(batch.MismatchedSequences.InputIds));
        Assert.Equal(new[] { Ignore, Ignore, 203, 2 }, Rows(batch.MismatchedSequences.Labels)[0]);
        Assert.Equal(new[] { true, false, true }, batch.Desirable);
        Assert.Equal((2, 1), (batch.DesirableCount, batch.UndesirableCount));
    }

    [Fact]
    public void Kto_refuses_a_microbatch_of_one()
    {
        var e = Assert.Throws<EngineException>(() => new UnpairedBatchIterator(new[] { U(1), U(2) }, 1, 0, Pad, null));
        Assert.Contains("KTO needs a microbatch of at least 2 rows", e.Message);
        Assert.Contains("z0", e.Message);
    }

    [Fact]
    public void Kto_drops_a_last_batch_of_one_row_but_keeps_larger_partial_batches()
    {
        var seven = new UnpairedBatchIterator(Enumerable.Range(0, 7).Select(i => U(i)).ToList(), 3, 0, Pad, null);
        Assert.Equal(2, seven.BatchesPerEpoch);
        Assert.Equal(1, seven.RowsLeftOutPerEpoch);
        var eight = new UnpairedBatchIterator(Enumerable.Range(0, 8).Select(i => U(i)).ToList(), 3, 0, Pad, null);
        Assert.Equal(new[] { 3, 3, 2 }, eight.EpochBatches(0).Select(b => b.Length));
        Assert.All(eight.Batches(2), b => { using (b) Assert.True(b.Rows >= 2); });
    }

    [Fact]
    public void Kto_shuffles_once_then_draws_the_same_sequential_order_every_epoch()
    {
        // Paired data converted for KTO lists every chosen row before every rejected one; the one seeded shuffle mixes them.
        var rows = Enumerable.Range(0, 8).Select(i => U(i, desirable: i < 4)).ToList();
        var it = new UnpairedBatchIterator(rows, 4, seed: 3, padId: Pad, maxLength: null);
        var e0 = it.EpochBatches(0).SelectMany(b => b).ToArray();
        Assert.Equal(e0, it.EpochBatches(1).SelectMany(b => b));
        Assert.Equal(Enumerable.Range(0, 8), e0.OrderBy(i => i));
        Assert.NotEqual(Enumerable.Range(0, 8), e0);
        var straight = it.Batches(2).Select(b => { using (b) return Rows(b.MismatchedSequences.InputIds); }).ToList();
        var resumed = it.Batches(2, new DataPosition(1, 1)).Select(b => { using (b) return Rows(b.MismatchedSequences.InputIds); }).ToList();
        Assert.Equal(straight.Skip(3), resumed);
    }

    [Fact]
    public void Kto_mismatched_rows_are_cut_to_max_length()
    {
        var rows = new[] { new TokenizedUnpaired([1, 5, 5, 5], [6, 2], true), new TokenizedUnpaired([1, 7], [8, 8, 8, 8, 2], false) };
        var it = new UnpairedBatchIterator(rows, 2, 0, Pad, maxLength: 6, shuffle: false);
        using var batch = it.Batches(1).Single();
        // Row 0 pairs prompt [1,5,5,5] with row 1's 5-token completion: cut to the 2 tokens of room left.
        Assert.Equal(new long[] { 1, 5, 5, 5, 8, 8 }, Rows(batch.MismatchedSequences.InputIds)[0]);
        Assert.Equal(new long[] { 1, 7, 6, 2, Pad, Pad }, Rows(batch.MismatchedSequences.InputIds)[1]);
    }
}
