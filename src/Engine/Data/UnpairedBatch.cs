namespace Engine.Data;

/// <summary>
/// A KTO microbatch: the rows as they are, and the mismatched rows for the KL estimate z0 — row i pairs prompt i
/// with the completion of row (i − 1) mod B, TRL's (x1,yB),(x2,y1),…,(xB,yB−1). On a data-parallel run B is the
/// global micro-batch, so a rank's mismatched completion may come from a row another rank trains on.
/// </summary>
public sealed class UnpairedBatch : ITrainBatch
{
    public SequenceBatch Sequences { get; }
    public SequenceBatch MismatchedSequences { get; }
    public bool[] Desirable { get; }
    public int Rows => Desirable.Length;
    public int Examples => Rows;
    public long Tokens => (long)Sequences.Rows * Sequences.Length + (long)MismatchedSequences.Rows * MismatchedSequences.Length;
    public int DesirableCount => Desirable.Count(d => d);
    public int UndesirableCount => Desirable.Count(d => !d);
    public DataPosition Position { get; }
    public DataPosition Next { get; }
    public IReadOnlyList<RowSource?> Sources { get; }
    /// <summary>Indices of the rows in the iterator's list; row i's mismatched completion is row i−1's.</summary>
    public IReadOnlyList<int> RowIndices { get; }
    public int GlobalExamples { get; }
    /// <summary>The row index of each row's mismatched completion (from the whole global micro-batch on a sharded run).</summary>
    public IReadOnlyList<int> MismatchedRowIndices { get; }

    internal UnpairedBatch(SequenceBatch sequences, SequenceBatch mismatched, bool[] desirable, DataPosition position, DataPosition next, IReadOnlyList<RowSource?> sources,
        IReadOnlyList<int> rowIndices, IReadOnlyList<int> mismatchedRowIndices, int globalRows)
    {
        Sequences = sequences; MismatchedSequences = mismatched; Desirable = desirable; Position = position; Next = next; Sources = sources; RowIndices = rowIndices;
        MismatchedRowIndices = mismatchedRowIndices; GlobalExamples = globalRows;
    }

    public void Dispose()
    {
        Sequences.Dispose();
        MismatchedSequences.Dispose();
    }
}
