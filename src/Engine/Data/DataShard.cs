namespace Engine.Data;

/// <summary>
/// Which part of every global micro-batch a rank of a data-parallel run trains on. The batch schedule cuts global
/// micro-batches of micro-batch × ranks examples from the one seeded order, and rank r takes its contiguous slice of
/// each, so the data order for a seed and global batch is the same for any number of ranks, and a run resumed with a
/// different number of ranks continues where it stopped.
/// </summary>
public readonly record struct DataShard(int Rank, int Ranks)
{
    public static DataShard Whole => new(0, 1);

    public bool IsWhole => Ranks == 1;

    public void Validate()
    {
        if (Ranks < 1 || Rank < 0 || Rank >= Ranks) throw new ArgumentException($"rank {Rank} of {Ranks} is not a valid shard");
    }

    /// <summary>
    /// This rank's examples [Start, Start + Count) of a global micro-batch of <paramref name="rows"/>: an even split in
    /// rank order, the first rows mod Ranks ranks taking one more (a full batch gives every rank its micro-batch).
    /// </summary>
    public (int Start, int Count) Range(int rows)
    {
        int share = rows / Ranks, extra = rows % Ranks;
        return (Rank * share + Math.Min(Rank, extra), share + (Rank < extra ? 1 : 0));
    }

    /// <summary>The rows of <paramref name="global"/> (a global micro-batch's indices) that this rank trains on.</summary>
    public int[] Slice(int[] global)
    {
        var (start, count) = Range(global.Length);
        return global[start..(start + count)];
    }

    public override string ToString() => IsWhole ? "all data" : $"shard {Rank} of {Ranks}";
}
