using Engine.Tokenization;

namespace Engine.Tests.Data;

/// <summary>
/// A deterministic test tokenizer: one id per character (code + 10), and the special-token strings
/// &lt;s&gt; (1), &lt;/s&gt; (2), &lt;|im_start|&gt; (3), &lt;|im_end|&gt; (4) when special tokens are parsed.
/// Expected ids in tests are written by hand from this rule.
/// </summary>
public sealed class CharTokenizer : TextTokenizer
{
    public const int Offset = 10;
    static readonly (string Text, int Id)[] Specials = { ("<s>", 1), ("</s>", 2), ("<|im_start|>", 3), ("<|im_end|>", 4) };

    public CharTokenizer(bool addBos = true)
    {
        BosId = 1;
        EosId = 2;
        PadId = 0;
        AddBos = addBos;
    }

    public static int Id(char c) => c + Offset;
    public static int[] Ids(string s) => s.Select(Id).ToArray();

    public override TokenizerKind Kind => TokenizerKind.ByteLevelBpe;
    public override int VocabSize => char.MaxValue + Offset + 1;

    public override IReadOnlyList<int> EncodeText(string text, bool parseSpecial = true)
    {
        var ids = new List<int>(text.Length);
        for (int i = 0; i < text.Length;)
        {
            if (parseSpecial)
            {
                var special = Specials.FirstOrDefault(s => string.CompareOrdinal(text, i, s.Text, 0, s.Text.Length) == 0);
                if (special.Text is not null) { ids.Add(special.Id); i += special.Text.Length; continue; }
            }
            ids.Add(Id(text[i++]));
        }
        return ids;
    }

    public override string Decode(IEnumerable<int> ids, bool skipSpecial = true) =>
        string.Concat(ids.Select(id => id >= Offset ? ((char)(id - Offset)).ToString() : skipSpecial ? "" : Specials.First(s => s.Id == id).Text));

    public override IReadOnlyList<string> Tokens => Array.Empty<string>();
    public override IReadOnlyList<float> Scores => Array.Empty<float>();
    public override IReadOnlyList<TokenType> TokenTypes => Array.Empty<TokenType>();
    public override void SaveTo(string directory) => throw new NotSupportedException();
}
