using Engine.Data;

namespace Engine.Tests.Distributed;

/// <summary>
/// Sharded batch sources: N ranks × micro-batch m see, batch by batch, exactly the examples (and for KTO the
/// mismatched pairs) of one rank with micro-batch N·m, at the same positions, from any resume point.
/// </summary>
public class DataShardTests
{
    [Theory]
    [InlineData(4, 2, new[] { 0, 2, 2, 2 })]
    [InlineData(5, 2, new[] { 0, 3, 3, 2 })]
    [InlineData(7, 3, new[] { 0, 3, 3, 2, 5, 2 })]
    public void RangesSplitEvenlyInRankOrder(int rows, int ranks, int[] expected)
    {
        var got = Enumerable.Range(0, ranks).SelectMany(r => { var (s, c) = new DataShard(r, ranks).Range(rows); return new[] { s, c }; });
        Assert.Equal(expected, got);
    }

    static List<TokenizedPair> Pairs(int n) => Enumerable.Range(0, n)
        .Select(i => new TokenizedPair(new[] { 1, 10 + i }, new[] { 100 + i }, new[] { 200 + i, 7 })).ToList();

    static List<TokenizedUnpaired> Rows(int n) => Enumerable.Range(0, n)
        .Select(i => new TokenizedUnpaired(new[] { 1, 10 + i }, Enumerable.Repeat(100 + i, 1 + i % 3).ToArray(), i % 3 != 0)).ToList();

    /// <summary>Each row's real tokens (padding removed).</summary>
    static List<long[]> Tokens(SequenceBatch b)
    {
        var ids = b.InputIds.data<long>().ToArray();
        var mask = b.AttentionMask.data<long>().ToArray();
        return Enumerable.Range(0, b.Rows).Select(r => Enumerable.Range(0, b.Length).Where(t => mask[r * b.Length + t] == 1)
            .Select(t => ids[r * b.Length + t]).ToArray()).ToList();
    }

    [Theory]
    [InlineData(2, 0, 0)]
    [InlineData(3, 1, 2)]
    public void PairedShardsConcatenateToTheOneRankBatches(int ranks, int startEpoch, int startBatch)
    {
        const int micro = 2;
        var pairs = Pairs(22); // 22 = 5 × 4 + 2 at two ranks, 3 × 6 + 4 at three
        var one = new PairedBatchIterator(pairs, micro * ranks, seed: 5, padId: 0);
        var shards = Enumerable.Range(0, ranks).Select(r => new PairedBatchIterator(pairs, micro, 5, 0, shard: new DataShard(r, ranks))).ToList();
        Assert.All(shards, s => Assert.Equal(one.BatchesPerEpoch, s.BatchesPerEpoch));
        var start = new DataPosition(startEpoch, startBatch);
        var expected = one.Batches(2, start).ToList();
        var got = shards.Select(s => s.Batches(2, start).ToList()).ToList();
        Assert.All(got, g => Assert.Equal(expected.Count, g.Count));
        for (int b = 0; b < expected.Count; b++)
        {
            Assert.Equal(expected[b].RowIndices, got.SelectMany(g => g[b].RowIndices));
            Assert.All(got, g => Assert.Equal(expected[b].Pairs, g[b].GlobalExamples));
            Assert.All(got, g => Assert.Equal(expected[b].Next, g[b].Next));
            // Chosen rows then rejected rows of each shard are the matching rows of the whole batch.
            var whole = Tokens(expected[b].Sequences);
            int offset = 0;
            foreach (var g in got)
            {
                var part = Tokens(g[b].Sequences);
                for (int i = 0; i < g[b].Pairs; i++)
                {
                    Assert.Equal(whole[offset + i], part[i]);
                    Assert.Equal(whole[expected[b].Pairs + offset + i], part[g[b].Pairs + i]);
                }
                offset += g[b].Pairs;
            }
        }
        foreach (var b in expected.Concat(got.SelectMany(g => g))) b.Dispose();
    }

    [Fact]
    public void KtoShardsKeepTheGlobalMismatchedPairs()
    {
        var rows = Rows(21); // micro 2 × 2 ranks = 4: five full batches and a last one of 1 row, dropped at every N (a lone row has no pair)
        var one = new UnpairedBatchIterator(rows, 4, seed: 9, padId: 0, maxLength: null);
        var shards = Enumerable.Range(0, 2).Select(r => new UnpairedBatchIterator(rows, 2, 9, 0, null, shard: new DataShard(r, 2))).ToList();
        var expected = one.Batches(1).ToList();
        var got = shards.Select(s => s.Batches(1).ToList()).ToList();
        Assert.Equal(5, expected.Count);
        Assert.All(got, g => Assert.Equal(5, g.Count));
        for (int b = 0; b < expected.Count; b++)
        {
            var e = expected[b];
            Assert.Equal(e.RowIndices, got.SelectMany(g => g[b].RowIndices));
            // TRL's rotation over the whole global batch: row i's completion comes from row i − 1, possibly another rank's.
            var partners = Enumerable.Range(0, e.Rows).Select(i => e.RowIndices[MismatchedPairs.CompletionRow(i, e.Rows)]).ToList();
            Assert.Equal(partners, got.SelectMany(g => g[b].MismatchedRowIndices));
            Assert.Equal(Tokens(e.MismatchedSequences), got.SelectMany(g => Tokens(g[b].MismatchedSequences)));
            Assert.Equal(Tokens(e.Sequences), got.SelectMany(g => Tokens(g[b].Sequences)));
            Assert.Equal(e.Desirable, got.SelectMany(g => g[b].Desirable));
        }
        foreach (var b in expected.Concat(got.SelectMany(g => g))) b.Dispose();
    }

    [Fact]
    public void ALastBatchTooSmallForEveryRankIsDropped()
    {
        // 10 pairs: one rank with micro-batch 3 keeps a last batch of 1; three ranks with micro-batch 1 cannot give each a pair.
        Assert.Equal(4, new PairedBatchIterator(Pairs(10), 3, 1, 0).BatchesPerEpoch);
        Assert.Equal(3, new PairedBatchIterator(Pairs(10), 1, 1, 0, shard: new DataShard(2, 3)).BatchesPerEpoch);
        // KTO needs 2 rows per rank: 10 rows at 2 ranks × 2 leave 2, too few for two ranks.
        Assert.Equal(3, new UnpairedBatchIterator(Rows(10), 4, 1, 0, null).BatchesPerEpoch);
        Assert.Equal(2, new UnpairedBatchIterator(Rows(10), 2, 1, 0, null, shard: new DataShard(0, 2)).BatchesPerEpoch);
        var e = Assert.Throws<EngineException>(() => new UnpairedBatchIterator(Rows(3), 2, 1, 0, null, shard: new DataShard(0, 2)));
        Assert.Contains("2 for each of 2 ranks", e.Message);
    }

    [Fact]
    public void CompletionShardsConcatenateToTheOneRankBatches()
    {
        var rows = Rows(9);
        var one = new CompletionBatchIterator(rows, 4, seed: 2, padId: 0).Batches(1).ToList();
        var shards = Enumerable.Range(0, 2).Select(r => new CompletionBatchIterator(rows, 2, 2, 0, shard: new DataShard(r, 2)).Batches(1).ToList()).ToList();
        Assert.Equal(3, one.Count); // 4, 4, 1: one rank keeps the last row, two ranks cannot give each one and drop it
        Assert.All(shards, s => Assert.Equal(2, s.Count));
        for (int b = 0; b < 2; b++) Assert.Equal(one[b].RowIndices, shards.SelectMany(s => s[b].RowIndices));
        foreach (var b in one.Concat(shards.SelectMany(s => s))) b.Dispose();
    }
}
