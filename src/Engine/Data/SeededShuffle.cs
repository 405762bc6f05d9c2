namespace Engine.Data;

/// <summary>
/// Deterministic permutations from a seed. Our own generator (SplitMix64) rather than System.Random, so a
/// seed gives the same data order on every .NET version and a resumed run draws exactly the same batches.
/// </summary>
public static class SeededShuffle
{
    /// <summary>A permutation of 0..n−1 (Fisher–Yates) determined by the seed and a stream number (e.g. the epoch).</summary>
    public static int[] Permutation(int n, long seed, long stream = 0)
    {
        var order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        ulong state = Mix((ulong)seed ^ Mix((ulong)stream + 0x632BE59BD9B4E019UL));
        for (int i = n - 1; i > 0; i--)
        {
            state += 0x9E3779B97F4A7C15UL;
            int j = (int)(Mix(state) % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
