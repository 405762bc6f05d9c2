using Engine.Data;

namespace Engine.Training;

/// <summary>One microbatch of whichever shape the method trains on.</summary>
public sealed class TrainBatch : IDisposable
{
    public PairedBatch? Paired { get; init; }
    public UnpairedBatch? Unpaired { get; init; }
    public CompletionBatch? Completions { get; init; }
    public required DataPosition Next { get; init; }

    /// <summary>Tokens the forward passes process (for tokens/s), KTO's mismatched pairs included.</summary>
    public long Tokens =>
        Paired != null ? Size(Paired.Sequences)
        : Unpaired != null ? Size(Unpaired.Sequences) + Size(Unpaired.MismatchedSequences)
        : Size(Completions!.Sequences);

    static long Size(SequenceBatch b) => (long)b.Rows * b.Length;

    public void Dispose()
    {
        Paired?.Dispose();
        Unpaired?.Dispose();
        Completions?.Dispose();
    }

    public static IEnumerable<TrainBatch> Enumerate(RunBatches data, int epochs, DataPosition start)
    {
        if (data.Paired != null)
            foreach (var b in data.Paired.Batches(epochs, start)) yield return new TrainBatch { Paired = b, Next = b.Next };
        else if (data.Unpaired != null)
            foreach (var b in data.Unpaired.Batches(epochs, start)) yield return new TrainBatch { Unpaired = b, Next = b.Next };
        else
            foreach (var b in data.Completions!.Batches(epochs, start)) yield return new TrainBatch { Completions = b, Next = b.Next };
    }
}
