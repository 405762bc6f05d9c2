using static TorchSharp.torch;

namespace Engine.Distributed;

/// <summary>
/// The ranks of a data-parallel run and the few collectives training needs. Every rank calls the same collectives
/// in the same order; <see cref="SingleProcess"/> is the one-rank implementation, so the trainer has one code path.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's index, 0 ≤ Rank &lt; Size. Rank 0 alone writes the run's output.</summary>
    int Rank { get; }
    int Size { get; }
    bool IsRoot => Rank == 0;
    /// <summary>For start lines and errors ("2 ranks (Open MPI 4.1.4)").</summary>
    string Description { get; }

    /// <summary>Element-wise sum over every rank, in place (fp64: metrics, counts, KTO's z0).</summary>
    void AllReduceSum(Span<double> values);

    /// <summary>Starts an element-wise fp32 sum over every rank of a contiguous CPU fp32 tensor, in place.</summary>
    IPendingReduction StartAllReduceSum(Tensor buffer);

    /// <summary>Root's bytes into every rank's <paramref name="data"/> (all ranks pass the same length).</summary>
    void Broadcast(Span<byte> data, int root);

    /// <summary>Every rank's bytes (of any length), indexed by rank.</summary>
    byte[][] AllGather(ReadOnlySpan<byte> mine);

    void Barrier();
}

/// <summary>A collective under way; <see cref="Wait"/> before reading its buffer.</summary>
public interface IPendingReduction
{
    /// <summary>Drives the collective forward without blocking; true once it is complete.</summary>
    bool Poll();
    void Wait();
}

/// <summary>A rank of the run died or left: the others cannot continue (MPI cannot shrink a job).</summary>
public sealed class RankLostException : EngineException
{
    public RankLostException(string message) : base(message) { }
}
