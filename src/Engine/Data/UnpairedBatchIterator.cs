using static TorchSharp.torch;

namespace Engine.Data;

/// <summary>
/// KTO microbatches, drawn in order as TRL does (its KL pairs are built per microbatch, so the batches must then be
/// taken sequentially). The rows are shuffled once, seeded, before batches are cut, so a microbatch mixes classes
/// and prompts (paired data converted for KTO lists all chosen rows before all rejected ones). TRL's KTOTrainer
/// shuffled the dataset like this only up to v0.11; later versions build the KL pairs in dataset order, so with
/// converted paired data their microbatches can hold one class only — a deliberate difference (docs/trl-parity.md).
/// Every epoch repeats that order.
/// A microbatch of 1 is refused (its only mismatched pair would be the row itself, so z0 could not be
/// estimated); for the same reason a last batch of one row is dropped, and other partial last batches are kept
/// unless <c>dropLast</c>.
/// </summary>
public sealed class UnpairedBatchIterator : IBatchSource<UnpairedBatch>
{
    readonly IReadOnlyList<TokenizedUnpaired> _rows;
    readonly BatchSchedule _schedule;
    readonly long _padId;
    readonly int? _maxLength;

    public int MicroBatchSize { get; }
    public int BatchesPerEpoch => _schedule.BatchesPerEpoch;
    public int Rows => _rows.Count;

    /// <param name="maxLength">Mismatched prompt + completion rows are cut to this (the completion's end goes), as matched rows were.</param>
    readonly DataShard _shard;

    /// <param name="microBatchSize">rows per micro-batch of one rank; the schedule cuts micro-batch × ranks rows per global batch, and the
    /// mismatched pairs are formed over the global batch, so z0 and every row's pair do not depend on the number of ranks</param>
    /// <param name="shard">this rank's part of each global batch (a last partial batch that cannot give every rank 2 rows is dropped)</param>
    public UnpairedBatchIterator(IReadOnlyList<TokenizedUnpaired> rows, int microBatchSize, long seed, long padId, int? maxLength,
                                 bool shuffle = true, bool dropLast = false, DataShard? shard = null)
    {
        if (microBatchSize < 2)
            throw new EngineException($"KTO needs a microbatch of at least 2 rows (got {microBatchSize}): its KL term z0 is estimated from " +
                                      "each prompt paired with another row's completion in the same microbatch, and a batch of 1 has no other row");
        _shard = shard ?? DataShard.Whole;
        _shard.Validate();
        int global = microBatchSize * _shard.Ranks, smallest = 2 * _shard.Ranks;
        if (rows.Count < smallest) throw new EngineException($"KTO needs at least {smallest} rows (got {rows.Count})" +
            (_shard.IsWhole ? "" : $": 2 for each of {_shard.Ranks} ranks"));
        if (dropLast && rows.Count < global)
            throw new EngineException($"{rows.Count} rows do not fill one microbatch of {global} (and the last partial batch is dropped)");
        _rows = rows;
        _padId = padId;
        _maxLength = maxLength;
        MicroBatchSize = microBatchSize;
        int n = rows.Count;
        var order = shuffle ? SeededShuffle.Permutation(n, seed) : Enumerable.Range(0, n).ToArray();
        _schedule = new BatchSchedule(n, global, dropLast ? global : smallest, _ => order);
    }

    /// <summary>Row indices of each batch of an epoch.</summary>
    public IReadOnlyList<int[]> EpochBatches(int epoch) => _schedule.Epoch(epoch);

    /// <summary>Rows dropped from every epoch (a last batch of one row, or a partial batch with dropLast).</summary>
    public int RowsLeftOutPerEpoch => _rows.Count - _schedule.Epoch(0).Sum(b => b.Length);

    IEnumerable<UnpairedBatch> IBatchSource<UnpairedBatch>.Batches(int epochs, DataPosition start) => Batches(epochs, start);

    /// <summary>The batches from <paramref name="start"/> to the end of <paramref name="epochs"/> epochs. The caller disposes each.</summary>
    public IEnumerable<UnpairedBatch> Batches(int epochs, DataPosition start = default, Device? device = null)
    {
        foreach (var (position, next, global) in _schedule.From(start, epochs))
        {
            int m = global.Length;
            var (first, count) = _shard.Range(m);
            var rows = global[first..(first + count)];
            var partners = new int[count];
            var matched = new List<(int[], int[])>(count);
            var mismatched = new List<(int[], int[])>(count);
            for (int k = 0; k < count; k++)
            {
                var row = _rows[rows[k]];
                matched.Add((row.Prompt, row.Completion));
                partners[k] = global[MismatchedPairs.CompletionRow(first + k, m)];
                var other = _rows[partners[k]].Completion;
                if (_maxLength is int max && row.Prompt.Length + other.Length > max)
                    other = other[..Math.Max(1, max - row.Prompt.Length)];
                mismatched.Add((row.Prompt, other));
            }
            var desirable = rows.Select(i => _rows[i].Desirable).ToArray();
            var sequences = SequenceBatch.Build(matched, _padId, device);
            SequenceBatch kl;
            try { kl = SequenceBatch.Build(mismatched, _padId, device); }
            catch { sequences.Dispose(); throw; }
            yield return new UnpairedBatch(sequences, kl, desirable, position, next, rows.Select(i => _rows[i].Source).ToList(), rows, partners, m);
        }
    }
}
