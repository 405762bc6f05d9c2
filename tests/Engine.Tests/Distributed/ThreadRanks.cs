using Engine.Distributed;
using static TorchSharp.torch;

namespace Engine.Tests.Distributed;

/// <summary>
/// N ranks as threads of this process, with collectives through shared slots and a barrier: an independent
/// implementation of <see cref="ICommunicator"/> for testing code that reduces over ranks (no torch work on the threads).
/// </summary>
public static class ThreadRanks
{
    public static T[] Run<T>(int ranks, Func<ICommunicator, T> body)
    {
        var shared = new Shared(ranks);
        var results = new T[ranks];
        var errors = new Exception?[ranks];
        var threads = Enumerable.Range(0, ranks).Select(r => new Thread(() =>
        {
            try { results[r] = body(new Member(shared, r)); }
            catch (Exception e) { errors[r] = e; shared.Barrier.Dispose(); }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var first = errors.FirstOrDefault(e => e is not null and not ObjectDisposedException) ?? errors.FirstOrDefault(e => e != null);
        if (first != null) throw first;
        return results;
    }

    sealed class Shared(int size)
    {
        public readonly Barrier Barrier = new(size);
        public readonly object?[] Slots = new object?[size];
    }

    sealed class Member(Shared shared, int rank) : ICommunicator
    {
        public int Rank => rank;
        public int Size => shared.Slots.Length;
        public string Description => $"{Size} threads";

        T Exchange<T>(object mine, Func<object?[], T> combine)
        {
            shared.Slots[rank] = mine;
            shared.Barrier.SignalAndWait();
            var result = combine(shared.Slots);
            shared.Barrier.SignalAndWait();
            return result;
        }

        public void AllReduceSum(Span<double> values)
        {
            int n = values.Length;
            var sum = Exchange(values.ToArray(), slots => Enumerable.Range(0, n).Select(i => slots.Sum(s => ((double[])s!)[i])).ToArray());
            sum.CopyTo(values);
        }

        public IPendingReduction StartAllReduceSum(Tensor buffer)
        {
            var mine = buffer.data<float>().ToArray();
            var sum = Exchange(mine, slots => Enumerable.Range(0, mine.Length).Select(i => slots.Sum(s => ((float[])s!)[i])).ToArray());
            using var t = tensor(sum);
            buffer.copy_(t);
            return new Done();
        }

        public void Broadcast(Span<byte> data, int root)
        {
            var fromRoot = Exchange(data.ToArray(), slots => (byte[])slots[root]!);
            fromRoot.CopyTo(data);
        }

        public byte[][] AllGather(ReadOnlySpan<byte> mine) => Exchange(mine.ToArray(), slots => slots.Select(s => (byte[])s!).ToArray());

        public void Barrier() => Exchange(0, _ => 0);

        public void Dispose() { }
    }

    sealed class Done : IPendingReduction
    {
        public bool Poll() => true;
        public void Wait() { }
    }
}
