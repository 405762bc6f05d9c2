using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Engine.Tokenization;

/// <summary>
/// A pre-tokenizer regex matched by code points rather than UTF-16 units. .NET's Regex sees a character outside the
/// basic plane as two surrogates, so <c>\p{L}</c> misses a letter such as 𠀀 (U+20000) that the reference (Oniguruma
/// on UTF-8) matches. Before matching, each such character is replaced by a basic-plane stand-in of the same
/// Unicode category; the tokenizer patterns only test categories and ASCII literals, so the matches are the same,
/// and their bounds are mapped back to the original text.
/// </summary>
internal sealed class UnicodeRegex
{
    readonly Regex _regex;
    readonly bool _substitute;

    public string Pattern { get; }

    public UnicodeRegex(string pattern, string source)
    {
        Pattern = pattern;
        try { _regex = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(10)); }
        catch (ArgumentException e)
        {
            throw new EngineException($"{source}: pre-tokenizer pattern is not a regex .NET supports: {e.Message}", e);
        }
        // A pattern that names astral characters itself must see them as they are.
        _substitute = !pattern.Any(char.IsSurrogate) && !pattern.Contains(@"\U", StringComparison.Ordinal);
    }

    public static UnicodeRegex Literal(string text, string source) => new(Regex.Escape(text), source);

    /// <summary>Match bounds (start, end) in <paramref name="text"/>, left to right, as Regex.Matches finds them.</summary>
    public List<(int Start, int End)> Matches(string text)
    {
        var result = new List<(int, int)>();
        string subject = text;
        int[]? originalIndex = null;
        if (_substitute && text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0)
            (subject, originalIndex) = Substitute(text);
        try
        {
            for (var m = _regex.Match(subject); m.Success; m = m.NextMatch())
            {
                int start = m.Index, end = m.Index + m.Length;
                if (originalIndex is not null) (start, end) = (originalIndex[start], originalIndex[end]);
                result.Add((start, end));
            }
        }
        catch (RegexMatchTimeoutException)
        {
            throw new EngineException($"pre-tokenizer pattern /{Pattern}/ took too long on the input (catastrophic backtracking?)");
        }
        return result;
    }

    /// <summary>The text with each surrogate pair replaced by one stand-in, and a map from its indices (and its end) back.</summary>
    static (string, int[]) Substitute(string text)
    {
        var sb = new StringBuilder(text.Length);
        var map = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length;)
        {
            map.Add(i);
            if (char.IsSurrogatePair(text, i))
            {
                sb.Append(StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]))));
                i += 2;
            }
            else sb.Append(text[i++]);
        }
        map.Add(text.Length);
        return (sb.ToString(), map.ToArray());
    }

    /// <summary>A basic-plane character of each category that no tokenizer pattern names literally.</summary>
    static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\uFF21',      // Ａ
        UnicodeCategory.LowercaseLetter => '\uFF41',      // ａ
        UnicodeCategory.TitlecaseLetter => '\u01C5',      // ǅ
        UnicodeCategory.ModifierLetter => '\u02B0',       // ʰ
        UnicodeCategory.OtherLetter => '\u3042',          // あ
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\uFF10',   // ０
        UnicodeCategory.LetterNumber => '\u2160',         // Ⅰ
        UnicodeCategory.OtherNumber => '\u00B2',          // ²
        UnicodeCategory.ConnectorPunctuation => '\uFF3F', // ＿
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\uFF08',
        UnicodeCategory.ClosePunctuation => '\uFF09',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\uFF01',     // ！
        UnicodeCategory.MathSymbol => '\uFF0B',           // ＋
        UnicodeCategory.CurrencySymbol => '\uFFE5',       // ￥
        UnicodeCategory.ModifierSymbol => '\uFF3E',       // ＾
        UnicodeCategory.OtherSymbol => '\u00A9',          // ©
        UnicodeCategory.Format => '\u2060',
        UnicodeCategory.PrivateUse => '\uE000',
        _ => '\uFFFE',                                    // unassigned
    };
}
