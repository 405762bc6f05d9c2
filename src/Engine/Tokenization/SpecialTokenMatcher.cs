namespace Engine.Tokenization;

/// <summary>A piece of input text: either plain text to tokenize, or a special token matched whole.</summary>
internal readonly record struct TextSegment(int Start, int Length, int TokenId)
{
    public bool IsToken => TokenId >= 0;
}

/// <summary>
/// Finds special-token strings in text (leftmost, then longest, as Hugging Face's added-token matcher does),
/// so that "&lt;|im_start|&gt;" maps to its id instead of being split into pieces. Tokens marked
/// <c>alwaysParsed</c> (user-defined / non-special added tokens) are matched even when special parsing is off.
/// </summary>
internal sealed class SpecialTokenMatcher
{
    readonly Dictionary<char, (string Text, int Id, bool AlwaysParsed)[]> _byFirstChar;

    public SpecialTokenMatcher(IEnumerable<(string Text, int Id, bool AlwaysParsed)> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Text.Length > 0)
            .GroupBy(t => t.Text[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Text.Length).ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    public List<TextSegment> Split(string text, bool parseSpecial)
    {
        var segments = new List<TextSegment>();
        int plainStart = 0;
        int i = 0;
        while (i < text.Length)
        {
            int id = -1, length = 0;
            if (_byFirstChar.TryGetValue(text[i], out var candidates))
            {
                foreach (var c in candidates)
                {
                    if ((parseSpecial || c.AlwaysParsed) && string.CompareOrdinal(text, i, c.Text, 0, c.Text.Length) == 0)
                    {
                        id = c.Id;
                        length = c.Text.Length;
                        break;
                    }
                }
            }
            if (id < 0) { i++; continue; }
            if (i > plainStart) segments.Add(new TextSegment(plainStart, i - plainStart, -1));
            segments.Add(new TextSegment(i, length, id));
            i += length;
            plainStart = i;
        }
        if (text.Length > plainStart) segments.Add(new TextSegment(plainStart, text.Length - plainStart, -1));
        return segments;
    }
}
