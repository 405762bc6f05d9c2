using Engine.Data;

namespace Engine.Training;

/// <summary>One split's batches for a method: paired (DPO, ORPO, SimPO), unpaired (KTO) or completions (SFT).</summary>
public sealed class RunBatches
{
    public PairedBatchIterator? Paired { get; init; }
    public UnpairedBatchIterator? Unpaired { get; init; }
    public CompletionBatchIterator? Completions { get; init; }
    /// <summary>Tokenized rows (pairs or unpaired rows) the indices in batches refer to.</summary>
    public required int Rows { get; init; }
    public required TruncationReport Truncation { get; init; }
    /// <summary>Desirable and undesirable counts for unpaired data.</summary>
    public (int Desirable, int Undesirable) Labels { get; init; }

    public int BatchesPerEpoch => Paired?.BatchesPerEpoch ?? Unpaired?.BatchesPerEpoch ?? Completions!.BatchesPerEpoch;
}
