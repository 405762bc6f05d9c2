using static TorchSharp.torch;

namespace Engine.Data;

/// <summary>A microbatch of prompt + completion rows for SFT (loss on the completions only).</summary>
public sealed class CompletionBatch : ITrainBatch
{
    public required SequenceBatch Sequences { get; init; }
    public required DataPosition Position { get; init; }
    public required DataPosition Next { get; init; }
    /// <summary>Indices of the rows in the iterator's list.</summary>
    public required IReadOnlyList<int> RowIndices { get; init; }
    public int Examples => Sequences.Rows;
    public required int GlobalExamples { get; init; }
    public long Tokens => (long)Sequences.Rows * Sequences.Length;
    public void Dispose() => Sequences.Dispose();
}

/// <summary>Seeded, resumable batches of completions (SFT), shuffled per epoch like paired data.</summary>
public sealed class CompletionBatchIterator : IBatchSource<CompletionBatch>
{
    readonly IReadOnlyList<TokenizedUnpaired> _rows;
    readonly BatchSchedule _schedule;
    readonly long _padId;

    public int BatchesPerEpoch => _schedule.BatchesPerEpoch;
    public int Rows => _rows.Count;

    readonly DataShard _shard;

    /// <param name="microBatchSize">rows per micro-batch of one rank; the schedule cuts micro-batch × ranks rows per global batch</param>
    public CompletionBatchIterator(IReadOnlyList<TokenizedUnpaired> rows, int microBatchSize, long seed, long padId, bool shuffle = true, DataShard? shard = null)
    {
        if (microBatchSize < 1) throw new EngineException($"the microbatch size must be at least 1 (got {microBatchSize})");
        if (rows.Count == 0) throw new EngineException("no completions to train on");
        _shard = shard ?? DataShard.Whole;
        _shard.Validate();
        _rows = rows;
        _padId = padId;
        int n = rows.Count;
        _schedule = new BatchSchedule(n, microBatchSize * _shard.Ranks, _shard.Ranks,
            epoch => shuffle ? SeededShuffle.Permutation(n, seed, epoch) : Enumerable.Range(0, n).ToArray());
    }

    IEnumerable<CompletionBatch> IBatchSource<CompletionBatch>.Batches(int epochs, DataPosition start) => Batches(epochs, start);

    public IEnumerable<CompletionBatch> Batches(int epochs, DataPosition start = default, Device? device = null)
    {
        foreach (var (position, next, global) in _schedule.From(start, epochs))
        {
            var rows = _shard.Slice(global);
            var sequences = rows.Select(i => (_rows[i].Prompt, _rows[i].Completion)).ToList();
            yield return new CompletionBatch
            {
                Sequences = SequenceBatch.Build(sequences, _padId, device), Position = position, Next = next, RowIndices = rows, GlobalExamples = global.Length,
            };
        }
    }
}
