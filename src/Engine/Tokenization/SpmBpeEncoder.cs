using System.Text;

namespace Engine.Tokenization;

/// <summary>
/// SentencePiece BPE encoding as llama.cpp does it (llm_tokenizer_spm): the text is split into characters, then
/// the adjacent pair whose concatenation is a piece with the highest score is merged, again and again (ties go
/// to the leftmost pair), using a priority queue of candidate pairs. Characters that never become a piece fall
/// back to byte pieces &lt;0xXX&gt; (or the unknown piece when the vocabulary has none).
/// This order differs from Microsoft.ML.Tokenizers inside runs of a repeated character ("!!!!!!"), which is
/// why the encoder is ours.
/// </summary>
internal sealed class SpmBpeEncoder
{
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _pieces;
    readonly float[] _scores;
    readonly int[] _byteIds;
    readonly int _unkId;

    /// <param name="mergeable">Pieces that text may turn into (normal, user-defined, unused), by text.</param>
    public SpmBpeEncoder(Dictionary<string, int> mergeable, float[] scores, int[] byteIds, int unkId)
    {
        _pieces = mergeable.GetAlternateLookup<ReadOnlySpan<char>>();
        _scores = scores;
        _byteIds = byteIds;
        _unkId = unkId;
    }

    struct Symbol
    {
        public int Start, Length, Prev, Next;
    }

    readonly record struct Bigram(int Left, int Right, float Score, int Size);

    sealed class BigramOrder : IComparer<Bigram>
    {
        public static readonly BigramOrder Instance = new();
        // The queue dequeues the smallest: highest score first, then the leftmost pair.
        public int Compare(Bigram a, Bigram b) => a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left);
    }

    /// <summary>Encodes already-escaped text (spaces as "▁") and appends the ids.</summary>
    public void Encode(string text, List<int> output)
    {
        if (text.Length == 0) return;
        var symbols = new List<Symbol>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            int len = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            symbols.Add(new Symbol { Start = i, Length = len, Prev = symbols.Count - 1, Next = i + len < text.Length ? symbols.Count + 1 : -1 });
            i += len;
        }
        var span = symbols.ToArray();
        var queue = new PriorityQueue<Bigram, Bigram>(span.Length, BigramOrder.Instance);
        for (int i = 1; i < span.Length; i++) TryAddBigram(text, span, queue, i - 1, i);

        while (queue.Count > 0)
        {
            var b = queue.Dequeue();
            ref var left = ref span[b.Left];
            ref var right = ref span[b.Right];
            // Stale entry: one side was merged away or grew since the pair was queued.
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != b.Size) continue;
            left.Length += right.Length;
            right.Length = 0;
            left.Next = right.Next;
            if (right.Next >= 0) span[right.Next].Prev = b.Left;
            TryAddBigram(text, span, queue, left.Prev, b.Left);
            TryAddBigram(text, span, queue, b.Left, left.Next);
        }

        for (int i = 0; i != -1; i = span[i].Next)
        {
            var piece = text.AsSpan(span[i].Start, span[i].Length);
            if (_pieces.TryGetValue(piece, out int id)) output.Add(id);
            else AppendFallback(piece, output);
        }
    }

    void TryAddBigram(string text, Symbol[] symbols, PriorityQueue<Bigram, Bigram> queue, int left, int right)
    {
        if (left < 0 || right < 0) return;
        int size = symbols[left].Length + symbols[right].Length;
        if (!_pieces.TryGetValue(text.AsSpan(symbols[left].Start, size), out int id)) return;
        var bigram = new Bigram(left, right, _scores[id], size);
        queue.Enqueue(bigram, bigram);
    }

    void AppendFallback(ReadOnlySpan<char> piece, List<int> output)
    {
        Span<byte> utf8 = stackalloc byte[Encoding.UTF8.GetMaxByteCount(piece.Length)];
        int n = Encoding.UTF8.GetBytes(piece, utf8);
        bool haveBytes = true;
        for (int j = 0; j < n; j++) haveBytes &= _byteIds[utf8[j]] >= 0;
        if (!haveBytes)
        {
            if (_unkId >= 0) output.Add(_unkId); // a vocabulary without an unknown piece drops the character
            return;
        }
        for (int j = 0; j < n; j++) output.Add(_byteIds[utf8[j]]);
    }
}
