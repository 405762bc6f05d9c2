using System.Globalization;
using System.Text;

namespace Engine.Tokenization;

/// <summary>A piece of input text: either plain text to tokenize, or an added token matched whole.</summary>
internal readonly record struct TextSegment(int Start, int Length, int TokenId)
{
    public bool IsToken => TokenId >= 0;
}

/// <summary>An added token with Hugging Face's matching flags (tokenizer.json "added_tokens").</summary>
internal sealed record AddedTokenSpec(int Id, string Content, bool Special, bool SingleWord = false, bool LStrip = false,
    bool RStrip = false, bool Normalized = false);

/// <summary>
/// Finds added tokens in text as Hugging Face's AddedVocabulary does: a trie over the token strings scanned
/// leftmost-longest (one walk per start position, so the cost does not grow with the number of tokens), then the
/// flags: single_word drops matches inside a word, lstrip/rstrip swallow the whitespace beside the token, and
/// special tokens are skipped when special parsing is off. A dropped match is not retried at a shorter length,
/// exactly as the Aho-Corasick iterator of the reference behaves.
/// </summary>
internal sealed class AddedTokenMatcher
{
    readonly Dictionary<long, int> _edges = new(BpeModel.MixedLongComparer.Instance);
    readonly List<int> _terminal = new() { -1 }; // node → index into _tokens, or -1
    readonly List<AddedTokenSpec> _tokens = new();
    readonly HashSet<char> _firstChars = new();

    public AddedTokenMatcher(IEnumerable<AddedTokenSpec> tokens)
    {
        foreach (var token in tokens)
        {
            if (token.Content.Length == 0) continue;
            int node = 0;
            foreach (char c in token.Content)
            {
                long key = (long)node << 16 | c;
                if (!_edges.TryGetValue(key, out int next))
                {
                    next = _terminal.Count;
                    _terminal.Add(-1);
                    _edges[key] = next;
                }
                node = next;
            }
            _firstChars.Add(token.Content[0]);
            // A repeated content keeps the later entry, as the reference's map from content to token does.
            if (_terminal[node] >= 0) _tokens[_terminal[node]] = token;
            else
            {
                _terminal[node] = _tokens.Count;
                _tokens.Add(token);
            }
        }
    }

    public bool IsEmpty => _tokens.Count == 0;

    /// <summary>
    /// Cuts <paramref name="text"/> into plain segments and token segments. With <paramref name="parseSpecial"/> off,
    /// special tokens are left in the text (Hugging Face's encode_special_tokens); other added tokens still match.
    /// </summary>
    public List<TextSegment> Split(string text, bool parseSpecial)
    {
        var segments = new List<TextSegment>();
        if (IsEmpty || text.Length == 0)
        {
            if (text.Length > 0) segments.Add(new TextSegment(0, text.Length, -1));
            return segments;
        }
        int startOffset = 0;
        int i = 0;
        while (i < text.Length)
        {
            if (!_firstChars.Contains(text[i]) || LongestAt(text, i) is not var (end, token))
            {
                i++;
                continue;
            }
            int matchEnd = end;
            i = matchEnd; // the scan resumes after the match even when the match is dropped below
            if (!parseSpecial && token.Special) continue;
            int start = matchEnd - token.Content.Length, stop = matchEnd;
            if (token.SingleWord)
            {
                bool startSpace = start == 0 || !EndsWithWordChar(text, start);
                bool stopSpace = stop == text.Length || !StartsWithWordChar(text, stop);
                if (!startSpace || !stopSpace) continue;
            }
            if (token.LStrip)
            {
                int newStart = start;
                while (newStart > 0 && IsWhiteSpaceBefore(text, newStart, out int width)) newStart -= width;
                start = Math.Max(newStart, startOffset);
            }
            if (token.RStrip)
                while (stop < text.Length && IsWhiteSpaceAt(text, stop, out int width)) stop += width;
            if (startOffset < start) segments.Add(new TextSegment(startOffset, start - startOffset, -1));
            segments.Add(new TextSegment(start, stop - start, token.Id));
            startOffset = stop;
        }
        if (startOffset < text.Length) segments.Add(new TextSegment(startOffset, text.Length - startOffset, -1));
        return segments;
    }

    (int End, AddedTokenSpec Token)? LongestAt(string text, int start)
    {
        int node = 0, best = -1, bestEnd = -1;
        for (int j = start; j < text.Length; j++)
        {
            if (!_edges.TryGetValue((long)node << 16 | text[j], out node)) break;
            if (_terminal[node] >= 0) { best = _terminal[node]; bestEnd = j + 1; }
        }
        return best < 0 ? null : (bestEnd, _tokens[best]);
    }

    static bool IsWhiteSpaceAt(string s, int i, out int width)
    {
        width = char.IsSurrogatePair(s, i) ? 2 : 1;
        return Rune.TryGetRuneAt(s, i, out var r) && Rune.IsWhiteSpace(r);
    }

    static bool IsWhiteSpaceBefore(string s, int end, out int width)
    {
        width = end >= 2 && char.IsSurrogatePair(s[end - 2], s[end - 1]) ? 2 : 1;
        return Rune.TryGetRuneAt(s, end - width, out var r) && Rune.IsWhiteSpace(r);
    }

    static bool EndsWithWordChar(string s, int end)
    {
        int width = end >= 2 && char.IsSurrogatePair(s[end - 2], s[end - 1]) ? 2 : 1;
        return Rune.TryGetRuneAt(s, end - width, out var r) && IsWordChar(r);
    }

    static bool StartsWithWordChar(string s, int start) => Rune.TryGetRuneAt(s, start, out var r) && IsWordChar(r);

    /// <summary>Rust regex's Unicode \w: alphabetic, marks, decimal digits, connector punctuation, joiners.</summary>
    internal static bool IsWordChar(Rune r)
    {
        if (r.Value is 0x200C or 0x200D) return true;
        return Rune.GetUnicodeCategory(r) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.LetterNumber
                or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation => true,
            _ => false,
        };
    }
}
