using System.Text;

namespace Engine.Tokenization;

/// <summary>
/// Hugging Face's BPE model: a word is split into characters (code points), each looked up in the vocabulary or,
/// failing that, turned into its &lt;0xXX&gt; byte tokens (byte_fallback) or the unknown token (consecutive unknowns
/// fused with fuse_unk); then the adjacent pair with the best merge rank is merged, leftmost first on ties, until no
/// pair has a merge. A priority queue keeps this O(n log n) in the word length, which matters for SentencePiece-style
/// vocabularies (Gemma) whose "words" are whole lines. With ignore_merges a word that is itself a token is taken whole.
/// </summary>
internal sealed class BpeModel
{
    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    readonly Dictionary<long, (int Rank, int NewId)> _merges;
    readonly int[] _byteIds = Enumerable.Repeat(-1, 256).ToArray();

    public IReadOnlyDictionary<string, int> Vocab => _vocab;
    readonly IReadOnlyList<(string A, string B)> _mergeParts;
    string[]? _mergeStrings;

    /// <summary>Merges as "a b" in rank order (built on first use: only GGUF export and saving need them).</summary>
    public IReadOnlyList<string> Merges => _mergeStrings ??= _mergeParts.Select(m => m.A + " " + m.B).ToArray();
    public IReadOnlyList<(string A, string B)> MergePairs => _mergeParts;
    public bool ByteFallback { get; }
    public bool FuseUnknown { get; }
    public bool IgnoreMerges { get; }
    public int? UnkId { get; }
    public string? UnkToken { get; }

    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string A, string B)> merges, bool byteFallback, bool fuseUnknown,
        bool ignoreMerges, string? unkToken, string source)
    {
        _vocab = vocab;
        _lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        ByteFallback = byteFallback;
        FuseUnknown = fuseUnknown;
        IgnoreMerges = ignoreMerges;
        UnkToken = unkToken;
        if (unkToken is not null)
            UnkId = vocab.TryGetValue(unkToken, out int unk) ? unk : throw new EngineException($"{source}: model.unk_token \"{unkToken}\" is not in model.vocab");
        _merges = new Dictionary<long, (int, int)>(merges.Count, MixedLongComparer.Instance);
        _mergeParts = merges;
        Span<char> joined = stackalloc char[256];
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (a, b) = merges[rank];
            int length = a.Length + b.Length;
            // Concatenate on the stack: half a million merges would otherwise allocate as many strings.
            var both = length <= joined.Length ? joined[..length] : new char[length];
            a.CopyTo(both);
            b.CopyTo(both[a.Length..]);
            if (!_lookup.TryGetValue(a, out int ia) || !_lookup.TryGetValue(b, out int ib) || !_lookup.TryGetValue(both, out int merged))
            {
                string missing = !vocab.ContainsKey(a) ? a : !vocab.ContainsKey(b) ? b : a + b;
                throw new EngineException($"{source}: model.merges[{rank}] (\"{a} {b}\") uses \"{missing}\", which is not in model.vocab");
            }
            _merges[Key(ia, ib)] = (rank, merged); // a repeated pair keeps its last rank, as the reference's map does
        }
        if (byteFallback)
            for (int b = 0; b < 256; b++)
                if (vocab.TryGetValue($"<0x{b:X2}>", out int id)) _byteIds[b] = id;
    }

    static long Key(int a, int b) => (long)a << 32 | (uint)b;

    /// <summary>
    /// long's own hash is its halves XORed, which maps the pairs (a, b) with the same a ^ b together: with Gemma's
    /// half-million merges the buckets degenerate into long chains. Mixing the bits first keeps lookups O(1).
    /// </summary>
    internal sealed class MixedLongComparer : IEqualityComparer<long>
    {
        public static readonly MixedLongComparer Instance = new();
        public bool Equals(long x, long y) => x == y;
        public int GetHashCode(long key)
        {
            ulong h = (ulong)key * 0x9E3779B97F4A7C15UL;
            return (int)(h >> 32) ^ (int)h;
        }
    }

    /// <summary>Whether id is the byte-fallback token of some byte.</summary>
    public bool IsByteToken(int id) => ByteFallback && Array.IndexOf(_byteIds, id) >= 0;

    /// <summary>The rank of the first merge that produces each token id (tokens no merge produces are absent).</summary>
    public Dictionary<int, int> FirstMergeRanks()
    {
        var ranks = new Dictionary<int, int>();
        foreach (var (_, (rank, newId)) in _merges)
            if (!ranks.TryGetValue(newId, out int r) || rank < r) ranks[newId] = rank;
        return ranks;
    }

    struct Symbol
    {
        public int Id, Prev, Next, Length;
    }

    // Words recur (the reference keeps a cache of 10,000 too); long ones (whole lines of SentencePiece-style text) rarely do.
    const int CacheCapacity = 10_000, CachedWordLength = 256;
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    public void Encode(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (word.Length <= CachedWordLength && _cache.TryGetValue(word, out var cached))
        {
            output.AddRange(cached);
            return;
        }
        int start = output.Count;
        EncodeUncached(word, output);
        if (word.Length <= CachedWordLength && _cache.Count < CacheCapacity)
            _cache.TryAdd(word, output.GetRange(start, output.Count - start).ToArray());
    }

    void EncodeUncached(string word, List<int> output)
    {
        if (IgnoreMerges && _lookup.TryGetValue(word.AsSpan(), out int whole))
        {
            output.Add(whole);
            return;
        }

        var symbols = new List<Symbol>(word.Length);
        void AddSymbol(int id, int length) =>
            symbols.Add(new Symbol { Id = id, Prev = symbols.Count - 1, Next = -1, Length = length });

        int pendingUnk = -1, pendingUnkLength = 0;
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < word.Length;)
        {
            int width = char.IsSurrogatePair(word, i) ? 2 : 1;
            var ch = word.AsSpan(i, width);
            i += width;
            if (_lookup.TryGetValue(ch, out int id))
            {
                if (pendingUnk >= 0) { AddSymbol(pendingUnk, pendingUnkLength); pendingUnk = -1; }
                AddSymbol(id, width);
                continue;
            }
            if (ByteFallback)
            {
                int n = Encoding.UTF8.GetBytes(ch, utf8);
                bool all = true;
                for (int j = 0; j < n; j++) all &= _byteIds[utf8[j]] >= 0;
                if (all)
                {
                    // (A pending unknown is not flushed here, exactly as in the reference.)
                    for (int j = 0; j < n; j++) AddSymbol(_byteIds[utf8[j]], 1);
                    continue;
                }
            }
            if (UnkId is int unk)
            {
                if (pendingUnk >= 0 && FuseUnknown) pendingUnkLength += width;
                else
                {
                    if (pendingUnk >= 0) AddSymbol(pendingUnk, pendingUnkLength);
                    pendingUnk = unk;
                    pendingUnkLength = width;
                }
            }
            // Without an unknown token the character is dropped, as the reference does.
        }
        if (pendingUnk >= 0) AddSymbol(pendingUnk, pendingUnkLength);
        if (symbols.Count == 0) return;

        var span = symbols.ToArray();
        for (int i = 0; i + 1 < span.Length; i++) span[i].Next = i + 1;
        // Priority: lowest rank, then leftmost position.
        var queue = new PriorityQueue<(int Pos, int NewId), long>(span.Length);
        void Consider(int left)
        {
            if (left < 0 || span[left].Next < 0) return;
            if (_merges.TryGetValue(Key(span[left].Id, span[span[left].Next].Id), out var m))
                queue.Enqueue((left, m.NewId), (long)m.Rank << 32 | (uint)left);
        }
        for (int i = 0; i + 1 < span.Length; i++) Consider(i);

        while (queue.TryDequeue(out var top, out _))
        {
            ref var left = ref span[top.Pos];
            if (left.Length == 0 || left.Next < 0) continue;
            int rightIndex = left.Next;
            ref var right = ref span[rightIndex];
            // A stale entry: the pair at this position no longer merges into the queued token.
            if (!_merges.TryGetValue(Key(left.Id, right.Id), out var current) || current.NewId != top.NewId) continue;
            left.Id = top.NewId;
            left.Length += right.Length;
            left.Next = right.Next;
            right.Length = 0;
            if (right.Next >= 0) span[right.Next].Prev = top.Pos;
            Consider(left.Prev);
            Consider(top.Pos);
        }

        for (int i = 0; i < span.Length; i++)
            if (span[i].Length > 0) output.Add(span[i].Id);
    }
}
