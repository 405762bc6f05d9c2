using Engine.Tokenization;

namespace Engine.Demo;

/// <summary>
/// A character-level SentencePiece tokenizer for the demo corpus: &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;, "▁", one piece per
/// character of the alphabet and the 256 byte pieces (so any text still encodes). No merges: small, exact, and
/// written as a real tokenizer.model so the demo model is an ordinary Hugging Face folder.
/// </summary>
public static class DemoTokenizer
{
    public static SpmTokenizer Create(string alphabet)
    {
        var pieces = new List<string> { "<unk>", "<s>", "</s>", "▁" };
        var types = new List<TokenType> { TokenType.Unknown, TokenType.Control, TokenType.Control, TokenType.Normal };
        foreach (char c in alphabet) { pieces.Add(c.ToString()); types.Add(TokenType.Normal); }
        for (int b = 0; b < 256; b++) { pieces.Add($"<0x{b:X2}>"); types.Add(TokenType.Byte); }
        var scores = pieces.Select((_, i) => -(float)i).ToList();
        return SpmTokenizer.FromPieces(pieces, scores, types, new TokenizerSettings { UnkId = 0, BosId = 1, EosId = 2, PadId = 0, AddBos = true, AddEos = false },
            "demo tokenizer");
    }
}
