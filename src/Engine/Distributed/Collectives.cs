using System.Runtime.InteropServices;
using System.Text;

namespace Engine.Distributed;

/// <summary>Typed helpers over <see cref="ICommunicator"/>'s byte and fp64 collectives.</summary>
public static class Collectives
{
    public static double AllReduceSum(this ICommunicator ranks, double value)
    {
        Span<double> v = stackalloc double[] { value };
        ranks.AllReduceSum(v);
        return v[0];
    }

    /// <summary>Root's values on every rank (every rank passes an array of the same length).</summary>
    public static void Broadcast<T>(this ICommunicator ranks, T[] values, int root = 0) where T : unmanaged =>
        ranks.Broadcast(MemoryMarshal.AsBytes(values.AsSpan()), root);

    /// <summary>Root's array on every rank; other ranks' argument is ignored (its length need not be known).</summary>
    public static T[] BroadcastArray<T>(this ICommunicator ranks, T[]? fromRoot, int root = 0) where T : unmanaged
    {
        if (ranks.Size == 1) return fromRoot ?? throw new ArgumentNullException(nameof(fromRoot));
        var length = new long[] { ranks.Rank == root ? fromRoot!.Length : 0 };
        ranks.Broadcast(length, root);
        var values = ranks.Rank == root ? fromRoot! : new T[length[0]];
        ranks.Broadcast(values, root);
        return values;
    }

    /// <summary>Every rank's array, concatenated in rank order.</summary>
    public static T[] AllGatherConcat<T>(this ICommunicator ranks, T[] mine) where T : unmanaged
    {
        if (ranks.Size == 1) return mine;
        var parts = ranks.AllGather(MemoryMarshal.AsBytes(mine.AsSpan()));
        return parts.SelectMany(p => MemoryMarshal.Cast<byte, T>(p).ToArray()).ToArray();
    }

    public static string[] AllGather(this ICommunicator ranks, string mine) =>
        ranks.AllGather(Encoding.UTF8.GetBytes(mine)).Select(b => Encoding.UTF8.GetString(b)).ToArray();

    /// <summary>True on every rank when any rank passes true (a stop request, a failure seen by one rank).</summary>
    public static bool Any(this ICommunicator ranks, bool mine) => ranks.AllReduceSum(mine ? 1.0 : 0.0) > 0;
}
