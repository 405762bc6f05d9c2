using static TorchSharp.torch;

namespace Engine.Data;

/// <summary>
/// Microbatches of preference pairs. Each epoch visits the pairs in a seeded random order (a new order per
/// epoch, the same for a given seed); the last, smaller batch of an epoch is kept unless <c>dropLast</c>, as
/// Hugging Face's DataLoader does by default.
/// </summary>
public sealed class PairedBatchIterator : IBatchSource<PairedBatch>
{
    readonly IReadOnlyList<TokenizedPair> _pairs;
    readonly BatchSchedule _schedule;
    readonly long _padId;

    public int MicroBatchSize { get; }
    public int BatchesPerEpoch => _schedule.BatchesPerEpoch;
    public int Rows => _pairs.Count;

    readonly DataShard _shard;

    /// <param name="microBatchSize">pairs per micro-batch of one rank; the schedule cuts micro-batch × ranks pairs per global batch</param>
    /// <param name="shard">this rank's part of each global batch (a last partial batch that cannot give every rank a pair is dropped)</param>
    public PairedBatchIterator(IReadOnlyList<TokenizedPair> pairs, int microBatchSize, long seed, long padId, bool shuffle = true, bool dropLast = false,
        DataShard? shard = null)
    {
        if (microBatchSize < 1) throw new EngineException($"the microbatch size must be at least 1 (got {microBatchSize})");
        if (pairs.Count == 0) throw new EngineException("no preference pairs to train on");
        _shard = shard ?? DataShard.Whole;
        _shard.Validate();
        int global = microBatchSize * _shard.Ranks;
        if (dropLast && pairs.Count < global)
            throw new EngineException($"{pairs.Count} pairs do not fill one microbatch of {global} (and the last partial batch is dropped)");
        if (pairs.Count < _shard.Ranks) throw new EngineException($"{pairs.Count} pairs cannot give each of {_shard.Ranks} ranks one");
        _pairs = pairs;
        _padId = padId;
        MicroBatchSize = microBatchSize;
        int n = pairs.Count;
        _schedule = new BatchSchedule(n, global, dropLast ? global : _shard.Ranks,
            epoch => shuffle ? SeededShuffle.Permutation(n, seed, epoch) : Enumerable.Range(0, n).ToArray());
    }

    /// <summary>Pair indices of each batch of an epoch.</summary>
    public IReadOnlyList<int[]> EpochBatches(int epoch) => _schedule.Epoch(epoch);

    IEnumerable<PairedBatch> IBatchSource<PairedBatch>.Batches(int epochs, DataPosition start) => Batches(epochs, start);

    /// <summary>The batches from <paramref name="start"/> to the end of <paramref name="epochs"/> epochs. The caller disposes each.</summary>
    public IEnumerable<PairedBatch> Batches(int epochs, DataPosition start = default, Device? device = null)
    {
        foreach (var (position, next, global) in _schedule.From(start, epochs))
        {
            var rows = _shard.Slice(global);
            var sequences = new List<(int[], int[])>(rows.Length * 2);
            foreach (int i in rows) sequences.Add((_pairs[i].Prompt, _pairs[i].Chosen));
            foreach (int i in rows) sequences.Add((_pairs[i].Prompt, _pairs[i].Rejected));
            yield return new PairedBatch(SequenceBatch.Build(sequences, _padId, device), rows.Length, position, next,
                rows.Select(i => _pairs[i].Source).ToList(), rows, global.Length);
        }
    }
}
