namespace Engine.Data;

/// <summary>
/// A KTO microbatch: the rows as they are, and the mismatched rows for the KL estimate z0 — row i pairs prompt i
/// with the completion of row (i − 1) mod B, TRL's (x1,yB),(x2,y1),…,(xB,yB−1).
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

    internal UnpairedBatch(SequenceBatch sequences, SequenceBatch mismatched, bool[] desirable, DataPosition position, DataPosition next, IReadOnlyList<RowSource?> sources, IReadOnlyList<int> rowIndices)
    {
        Sequences = sequences; MismatchedSequences = mismatched; Desirable = desirable; Position = position; Next = next; Sources = sources; RowIndices = rowIndices;
    }

    public void Dispose()
    {
        Sequences.Dispose();
        MismatchedSequences.Dispose();
    }
}
