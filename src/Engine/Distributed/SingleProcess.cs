using static TorchSharp.torch;

namespace Engine.Distributed;

/// <summary>One rank: every collective is the identity. Loads no MPI library.</summary>
public sealed class SingleProcess : ICommunicator
{
    public static readonly SingleProcess Instance = new();

    SingleProcess() { }

    public int Rank => 0;
    public int Size => 1;
    public string Description => "1 process";
    public void AllReduceSum(Span<double> values) { }
    public IPendingReduction StartAllReduceSum(Tensor buffer) => Done.Instance;
    public void Broadcast(Span<byte> data, int root) { }
    public byte[][] AllGather(ReadOnlySpan<byte> mine) => new[] { mine.ToArray() };
    public void Barrier() { }
    public void Dispose() { }

    sealed class Done : IPendingReduction
    {
        public static readonly Done Instance = new();
        public bool Poll() => true;
        public void Wait() { }
    }
}
