namespace Engine.Data;

/// <summary>
/// Which rows form each microbatch of each epoch. Deterministic in (rows, size, seed, epoch), so a run resumed
/// at a <see cref="DataPosition"/> draws the same batches as a straight run.
/// </summary>
internal sealed class BatchSchedule
{
    readonly int _rows, _batchSize, _smallestBatch;
    readonly Func<int, int[]> _order;

    /// <param name="smallestBatch">A last batch with fewer rows than this is dropped.</param>
    public BatchSchedule(int rows, int batchSize, int smallestBatch, Func<int, int[]> epochOrder)
    {
        _rows = rows; _batchSize = batchSize; _smallestBatch = smallestBatch; _order = epochOrder;
        int remainder = rows % batchSize;
        BatchesPerEpoch = rows / batchSize + (remainder > 0 && remainder >= smallestBatch ? 1 : 0);
    }

    public int BatchesPerEpoch { get; }

    /// <summary>Row indices of each batch of an epoch.</summary>
    public List<int[]> Epoch(int epoch)
    {
        var order = _order(epoch);
        var batches = new List<int[]>(BatchesPerEpoch);
        for (int b = 0; b < BatchesPerEpoch; b++)
            batches.Add(order[(b * _batchSize)..Math.Min(_rows, (b + 1) * _batchSize)]);
        return batches;
    }

    /// <summary>Every (position, next, rows) from <paramref name="start"/> to the end of <paramref name="epochs"/> epochs.</summary>
    public IEnumerable<(DataPosition Position, DataPosition Next, int[] Rows)> From(DataPosition start, int epochs)
    {
        if (epochs < 1) throw new EngineException($"the number of epochs must be at least 1 (got {epochs})");
        if (start.BatchIndex == BatchesPerEpoch) start = new DataPosition(start.Epoch + 1, 0);
        if (start.Epoch < 0 || start.BatchIndex < 0 || start.BatchIndex > BatchesPerEpoch || start.Epoch > epochs)
            throw new EngineException($"cannot resume at {start}: the data has {epochs} epoch{(epochs == 1 ? "" : "s")} of {BatchesPerEpoch} batches");
        for (int e = start.Epoch; e < epochs; e++)
        {
            var batches = Epoch(e);
            for (int b = e == start.Epoch ? start.BatchIndex : 0; b < batches.Count; b++)
            {
                var next = b + 1 < batches.Count ? new DataPosition(e, b + 1) : new DataPosition(e + 1, 0);
                yield return (new DataPosition(e, b), next, batches[b]);
            }
        }
    }
}
