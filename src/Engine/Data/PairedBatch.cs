namespace Engine.Data;

/// <summary>
/// A microbatch of preference pairs for one forward pass: <see cref="Sequences"/> rows 0..P−1 are prompt + chosen,
/// rows P..2P−1 prompt + rejected, in the same pair order (P = <see cref="Pairs"/>).
/// </summary>
public sealed class PairedBatch : ITrainBatch
{
    public SequenceBatch Sequences { get; }
    public int Pairs { get; }
    /// <summary>Where this batch was drawn.</summary>
    public DataPosition Position { get; }
    /// <summary>The position to resume from once this batch has been trained on.</summary>
    public DataPosition Next { get; }
    /// <summary>Dataset rows of the pairs (for diagnostics).</summary>
    public IReadOnlyList<RowSource?> Sources { get; }
    /// <summary>Indices of the pairs in the iterator's list (the reference cache is keyed by them).</summary>
    public IReadOnlyList<int> RowIndices { get; }
    public int GlobalExamples { get; }

    internal PairedBatch(SequenceBatch sequences, int pairs, DataPosition position, DataPosition next, IReadOnlyList<RowSource?> sources, IReadOnlyList<int> rowIndices,
        int globalPairs)
    {
        Sequences = sequences; Pairs = pairs; Position = position; Next = next; Sources = sources; RowIndices = rowIndices; GlobalExamples = globalPairs;
    }

    public int Examples => Pairs;
    public long Tokens => (long)Sequences.Rows * Sequences.Length;

    public void Dispose() => Sequences.Dispose();
}
