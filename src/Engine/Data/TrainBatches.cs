namespace Engine.Data;

/// <summary>One microbatch of whichever shape a method trains on (pairs, unpaired rows, completions).</summary>
public interface ITrainBatch : IDisposable
{
    /// <summary>The position to resume from once this batch has been trained on.</summary>
    DataPosition Next { get; }
    /// <summary>Examples in the batch: pairs for paired data, rows otherwise.</summary>
    int Examples { get; }
    /// <summary>Examples in the global micro-batch this batch is a rank's shard of (<see cref="Examples"/> on one rank).</summary>
    int GlobalExamples { get; }
    /// <summary>Tokens the policy's forward passes process (for tokens/s), KTO's mismatched pairs included.</summary>
    long Tokens { get; }
    /// <summary>Indices of the examples in their source's list (reference log-probs are keyed by them).</summary>
    IReadOnlyList<int> RowIndices { get; }
}

/// <summary>
/// Seeded, resumable microbatches of one split. In a data-parallel run each rank's source yields its
/// <see cref="DataShard"/> of every global micro-batch, so positions and batch counts are those of the global batches.
/// </summary>
public interface IBatchSource<out TBatch> where TBatch : ITrainBatch
{
    /// <summary>Examples the row indices of the batches refer to (the whole split, on every rank).</summary>
    int Rows { get; }
    /// <summary>Global micro-batches per epoch.</summary>
    int BatchesPerEpoch { get; }
    /// <summary>The batches from <paramref name="start"/> to the end of <paramref name="epochs"/> epochs. The caller disposes each.</summary>
    IEnumerable<TBatch> Batches(int epochs, DataPosition start);
}

/// <summary>
/// KTO's mismatched pairing inside a microbatch of m rows (TRL's): prompt i is paired with the completion of row
/// (i − 1) mod m, i.e. (x1,ym), (x2,y1), …, (xm,y(m−1)). The only place that rule is written.
/// </summary>
public static class MismatchedPairs
{
    /// <summary>The row whose completion is paired with row <paramref name="i"/>'s prompt.</summary>
    public static int CompletionRow(int i, int m)
    {
        if (m < 2) throw new EngineException($"kto: a microbatch of {m} row(s) has no mismatched pairs; use at least 2");
        return (i + m - 1) % m;
    }
}
