using System.Text.Json.Nodes;
using Engine.Tests.Infrastructure;
using Engine.Tokenization;
using static Engine.Tests.Tokenization.SyntheticByteBpe;

namespace Engine.Tests.Tokenization;

public class HfTokenizerTests
{
    static HfTokenizer LoadSynthetic(string json, string? config = null)
    {
        using var dir = new TempDir();
        WriteFolder(dir.Path, json, config);
        return Assert.IsType<HfTokenizer>(TokenizerLoader.Load(dir.Path));
    }

    static readonly string[] Texts =
    {
        "hello world", " hello the", "the abc", "1234 12345", "日本語 😀 café", "<|begin_of_text|>hello<|eot_id|>",
        "a<|user|>b", "  spaces\n\n\ttabs ", " xyz", "I'm here, aren't I?", "",
    };

    [Fact]
    public void ByteAlphabetOfTheTestIsGpt2s()
    {
        Assert.Equal('\u0120', ByteChar[' ']);  // Ġ
        Assert.Equal('\u010A', ByteChar['\n']); // Ċ
        Assert.Equal('\u0121', ByteChar[0x7F]); // ġ
        Assert.Equal('\u0143', ByteChar[0xAD]); // Ń
        Assert.Equal('é', ByteChar[0xE9]);
    }

    [Fact]
    public void MergesApplyInRankOrder()
    {
        var tok = LoadSynthetic(Json());
        Assert.Equal(new int[] { MergedId("hello") }, tok.EncodeText("hello"));
        // "b c" has the better rank, so "abc" is a + bc even though "a b" comes first in the text.
        Assert.Equal(new int[] { 'a', MergedId("bc") }, tok.EncodeText("abc"));
        Assert.Equal(new int[] { MergedId("ab") }, tok.EncodeText("ab"));
        // " the": "Ġ t" (rank 5) before "h e" (rank 6), then "Ġt he".
        Assert.Equal(new int[] { MergedId("Ġthe") }, tok.EncodeText(" the"));
        // "the" alone: t + he ("t he" is no merge).
        Assert.Equal(new int[] { 't', MergedId("he") }, tok.EncodeText("the"));
    }

    [Fact]
    public void SpacesAreGAndWordsSplitBeforeMerging()
    {
        var tok = LoadSynthetic(Json());
        // " world" has no merges: Ġ (byte 32) then the letters; the pre-tokenizer keeps "hello" and " world" apart.
        Assert.Equal(new int[] { MergedId("hello"), 32, 'w', 'o', 'r', 'l', 'd' }, tok.EncodeText("hello world"));
        Assert.Equal(new int[] { MergedId("Ġhello") }, tok.EncodeText(" hello"));
        // Llama-3's pattern groups digits by three: "1234" is "123" + "4".
        Assert.Equal(new int[] { MergedId("123"), '4' }, tok.EncodeText("1234"));
        Assert.Equal(new int[] { 10, 10 }, tok.EncodeText("\n\n"));
    }

    [Fact]
    public void BytesAboveAsciiGoThroughTheByteAlphabet()
    {
        var tok = LoadSynthetic(Json());
        // 日 = E6 97 A5 merges into one token; 本 = E6 9C AC and 😀 = F0 9F 98 80 stay bytes.
        Assert.Equal(new int[] { MergedId(Spell("日")), 0xE6, 0x9C, 0xAC }, tok.EncodeText("日本"));
        Assert.Equal(new int[] { 0xF0, 0x9F, 0x98, 0x80 }, tok.EncodeText("😀"));
        Assert.Equal(new int[] { 'c', 'a', 'f', 0xC3, 0xA9 }, tok.EncodeText("café"));
    }

    [Fact]
    public void SpecialTokensInTextAreKeptWhole()
    {
        var tok = LoadSynthetic(Json());
        Assert.Equal(new int[] { 300, MergedId("hello"), 301 }, tok.EncodeText("<|begin_of_text|>hello<|eot_id|>"));
        var literal = tok.EncodeText("<|begin_of_text|>hello", parseSpecial: false);
        Assert.DoesNotContain(300, literal);
        Assert.Equal("<|begin_of_text|>hello", tok.Decode(literal));
        // A non-special added token is matched even when special tokens are not parsed.
        Assert.Equal(new int[] { 'a', 302, 'b' }, tok.EncodeText("a<|user|>b", parseSpecial: false));
        Assert.Equal("hello", tok.Decode(new[] { 300, MergedId("hello"), 301 }));
        Assert.Equal("<|begin_of_text|>hello<|eot_id|>", tok.Decode(new[] { 300, MergedId("hello"), 301 }, skipSpecial: false));
        Assert.Equal("a<|user|>b", tok.Decode(new[] { 'a', 302, 'b' }));
        Assert.True(tok.IsSpecial(300));
        Assert.False(tok.IsSpecial(302));
    }

    [Theory]
    [InlineData("Hello, 世界! 😀🎉 naïve café — ∑x² 👩‍👩‍👧 \t\r\n end")]
    [InlineData("العربية עברית ไทย 한국어 日本語テキスト")]
    [InlineData("  leading and trailing  ")]
    [InlineData("\u0000\u0001 control \u007F\u00AD")]
    public void ArbitraryUtf8RoundTrips(string text)
    {
        var tok = LoadSynthetic(Json());
        Assert.Equal(text, tok.Decode(tok.EncodeText(text)));
        Assert.Equal(text, tok.Decode(tok.Encode(text)));
    }

    [Fact]
    public void IgnoreMergesTakesWholeWordsFromTheVocabulary()
    {
        Assert.Equal(new int[] { 32, 'x', 'y', 'z' }, LoadSynthetic(Json(ignoreMerges: false)).EncodeText(" xyz"));
        Assert.Equal(new int[] { MergedId(Unreachable) }, LoadSynthetic(Json(ignoreMerges: true)).EncodeText(" xyz"));
    }

    [Fact]
    public void MergesAsPairsEqualMergesAsStrings()
    {
        var strings = LoadSynthetic(Json());
        var pairs = LoadSynthetic(Json(mergesAsPairs: true));
        Assert.Equal(strings.Merges, pairs.Merges);
        foreach (var t in Texts) Assert.Equal(strings.EncodeText(t), pairs.EncodeText(t));
    }

    [Fact]
    public void Gpt2ByteLevelPreTokenizerWithPrefixSpace()
    {
        var pre = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true };
        var tok = LoadSynthetic(Json(preTokenizer: pre, bosTemplate: false));
        Assert.Equal(new int[] { MergedId("Ġhello") }, tok.EncodeText("hello"));
        // GPT-2's pattern keeps digit runs whole (" ?\p{N}+"): "1234" → "12"+"3"→"123", then "4".
        Assert.Equal(new int[] { 32, MergedId("123"), '4' }, tok.EncodeText("1234"));
        Assert.False(tok.AddBos);
    }

    [Fact]
    public void NfcNormalizerComposesBeforeEncoding()
    {
        string decomposed = "e\u0301";
        Assert.Equal(new int[] { 'e', 0xCC, 0x81 }, LoadSynthetic(Json()).EncodeText(decomposed));
        var nfc = LoadSynthetic(Json(normalizer: new JsonObject { ["type"] = "NFC" }));
        Assert.Equal(new int[] { 0xC3, 0xA9 }, nfc.EncodeText(decomposed));
    }

    [Fact]
    public void BosComesFromThePostProcessorUnlessTheConfigSays()
    {
        var tok = LoadSynthetic(Json());
        Assert.Equal(300, tok.BosId);
        Assert.True(tok.AddBos);
        Assert.Equal(new int[] { 300, MergedId("hello") }, tok.Encode("hello"));

        var config = """{"add_bos_token": false, "bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>", "special": true}, "pad_token": null}""";
        var configured = LoadSynthetic(Json(), config);
        Assert.False(configured.AddBos);
        Assert.Equal((300, 301), (configured.BosId, configured.EosId));
        Assert.Null(configured.PadId);
        Assert.Equal(new int[] { MergedId("hello") }, configured.Encode("hello"));

        var none = LoadSynthetic(Json(bosTemplate: false));
        Assert.Null(none.BosId);
        Assert.False(none.AddBos);
    }

    [Fact]
    public void VocabularyTablesForGguf()
    {
        var tok = LoadSynthetic(Json());
        Assert.Equal(303, tok.VocabSize);
        Assert.Equal("Ġ", tok.Tokens[32]);
        Assert.Equal(TokenType.Normal, tok.TokenTypes[MergedId("hello")]);
        Assert.Equal(TokenType.Control, tok.TokenTypes[300]);
        Assert.Equal(TokenType.UserDefined, tok.TokenTypes[302]);
        Assert.Empty(tok.Scores);
        Assert.Equal("l l", tok.Merges[0]);
        Assert.Equal(PreTokenizerPatterns.Llama3, tok.PreTokenizerPattern);
    }

    [Fact]
    public void FromVocabularyEncodesLikeTheJsonFile()
    {
        // llama.cpp's "llama-bpe" is Llama-3's pattern with ignore_merges.
        var file = LoadSynthetic(Json(ignoreMerges: true));
        var built = HfTokenizer.FromVocabulary(file.Tokens, file.TokenTypes, file.Merges, "llama-bpe", new TokenizerSettings { BosId = 300, EosId = 301, AddBos = true });
        Assert.Equal(file.Tokens, built.Tokens);
        Assert.Equal(file.TokenTypes, built.TokenTypes);
        foreach (var t in Texts)
        {
            Assert.Equal(file.Encode(t), built.Encode(t));
            Assert.Equal(file.Decode(file.Encode(t)), built.Decode(built.Encode(t)));
        }
        // Qwen2's pattern splits every digit, so "123" no longer merges.
        var qwen = HfTokenizer.FromVocabulary(file.Tokens, file.TokenTypes, file.Merges, "qwen2", new TokenizerSettings());
        Assert.Equal(new int[] { '1', '2', '3', '4' }, qwen.EncodeText("1234"));
        Assert.False(qwen.AddBos);
        var gpt2 = HfTokenizer.FromVocabulary(file.Tokens, file.TokenTypes, file.Merges, "gpt-2", new TokenizerSettings());
        Assert.Equal(new int[] { MergedId("123"), '4' }, gpt2.EncodeText("1234"));
        var e = Assert.Throws<EngineException>(() => HfTokenizer.FromVocabulary(file.Tokens, file.TokenTypes, file.Merges, "falcon", new TokenizerSettings(), "model.gguf"));
        Assert.Contains("falcon", e.Message);
        Assert.Contains("model.gguf", e.Message);
    }

    [Fact]
    public void SaveToReloadsIdentically()
    {
        var config = """{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": "{{ messages }}", "model_max_length": 8192}""";
        var file = LoadSynthetic(Json(ignoreMerges: true), config);
        using var fromFile = new TempDir();
        file.SaveTo(fromFile.Path);
        var reloaded = TokenizerLoader.Load(fromFile.Path);
        Assert.Equal("{{ messages }}", reloaded.ChatTemplate);
        Assert.Contains("model_max_length", File.ReadAllText(fromFile.File("tokenizer_config.json")));

        var built = HfTokenizer.FromVocabulary(file.Tokens, file.TokenTypes, file.Merges, "llama-bpe",
            new TokenizerSettings { BosId = 300, EosId = 301, AddBos = true, ChatTemplate = "{{ messages }}" });
        using var fromVocab = new TempDir();
        built.SaveTo(fromVocab.Path);
        var rebuilt = TokenizerLoader.Load(fromVocab.Path);
        Assert.IsType<HfTokenizer>(rebuilt);

        foreach (var tok in new[] { reloaded, rebuilt })
        {
            Assert.Equal(file.Tokens, tok.Tokens);
            Assert.Equal(file.TokenTypes, tok.TokenTypes);
            Assert.Equal(file.Merges, tok.Merges);
            Assert.Equal((300, 301, true, false), (tok.BosId, tok.EosId, tok.AddBos, tok.AddEos));
            foreach (var t in Texts) Assert.Equal(file.Encode(t), tok.Encode(t));
        }
    }
}
