using System.Text;
using Engine.Tests.Infrastructure;
using Engine.Tokenization;

namespace Engine.Tests.Tokenization;

/// <summary>Hostile or broken tokenizer files fail with an EngineException that names the file and the problem.</summary>
public class TokenizerBadInputTests
{
    /// <summary>Protobuf bytes written by hand (independently of the reader under test).</summary>
    sealed class Proto
    {
        readonly List<byte> _bytes = new();
        public byte[] Bytes => _bytes.ToArray();
        public Proto Varint(ulong v)
        {
            while (v >= 0x80) { _bytes.Add((byte)(v | 0x80)); v >>= 7; }
            _bytes.Add((byte)v);
            return this;
        }
        public Proto Key(int field, int wire) => Varint((ulong)(field << 3 | wire));
        public Proto VarintField(int field, ulong v) => Key(field, 0).Varint(v);
        public Proto Bytes_(int field, byte[] b) { Key(field, 2).Varint((ulong)b.Length); _bytes.AddRange(b); return this; }
        public Proto Message(int field, Proto m) => Bytes_(field, m.Bytes);
        public Proto Str(int field, string s) => Bytes_(field, Encoding.UTF8.GetBytes(s));
        public Proto Float(int field, float f) { Key(field, 5); _bytes.AddRange(BitConverter.GetBytes(f)); return this; }
    }

    static Proto Piece(string text, float score, int type = 1) => new Proto().Str(1, text).Float(2, score).VarintField(3, (ulong)type);

    static byte[] TinyModel(int modelType = 2, int pieceType = 1, ulong? bosId = null)
    {
        var trainer = new Proto().VarintField(3, (ulong)modelType);
        if (bosId is ulong b) trainer.VarintField(41, b);
        return new Proto()
            .Message(1, Piece("<unk>", 0, 2)).Message(1, Piece("<s>", 0, 3)).Message(1, Piece("</s>", 0, 3))
            .Message(1, Piece("▁", -1)).Message(1, Piece("a", -2, pieceType)).Message(1, Piece("▁a", -0.5f))
            .Message(2, trainer)
            .Message(3, new Proto().Str(1, "identity").VarintField(4, 0))
            .Bytes;
    }

    static EngineException LoadFails(string fileName, byte[] content)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File(fileName), content);
        var e = Assert.Throws<EngineException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains(fileName, e.Message);
        return e;
    }

    [Fact]
    public void HandWrittenTinyModelLoads()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("tokenizer.model"), TinyModel());
        var tok = TokenizerLoader.Load(dir.Path);
        Assert.Equal(new[] { 1, 5, 5 }, tok.Encode("a a"));
        Assert.Equal("a a", tok.Decode(tok.Encode("a a")));
    }

    [Fact]
    public void UnigramModelsAreRefusedClearly()
    {
        var e = LoadFails("tokenizer.model", TinyModel(modelType: 1));
        Assert.Contains("Unigram is not supported", e.Message);
    }

    [Theory]
    [InlineData(7, "model_type 7")]
    public void UnknownModelTypeIsRejected(int modelType, string expected) =>
        Assert.Contains(expected, LoadFails("tokenizer.model", TinyModel(modelType)).Message);

    [Fact]
    public void UnknownPieceTypeIsRejected() =>
        Assert.Contains("unknown type 9", LoadFails("tokenizer.model", TinyModel(pieceType: 9)).Message);

    [Fact]
    public void SpecialIdOutOfRangeIsRejected() =>
        Assert.Contains("bos id 40000 is out of range", LoadFails("tokenizer.model", TinyModel(bosId: 40000)).Message);

    [Fact]
    public void HugeLengthFieldFailsWithoutAllocating()
    {
        // A pieces field that claims 2^40 bytes.
        var bytes = new Proto().Key(1, 2).Varint(1UL << 40).Bytes.Concat(new byte[16]).ToArray();
        var e = LoadFails("tokenizer.model", bytes);
        Assert.Contains("runs past the end", e.Message);
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF })]
    [InlineData(new byte[] { 0x0B, 0x00 })] // wire type 3 (group)
    [InlineData(new byte[] { 0x00 })]       // field number 0
    [InlineData(new byte[] { 0x3C, 0x3F, 0x78, 0x6D, 0x6C })] // "<?xml"
    public void GarbageIsRejected(byte[] bytes) => LoadFails("tokenizer.model", bytes);

    [Fact]
    public void InvalidUtf8PieceIsRejected()
    {
        var bytes = new Proto().Message(1, new Proto().Bytes_(1, new byte[] { 0xC3, 0x28 }).Float(2, 0)).Bytes;
        Assert.Contains("not valid UTF-8", LoadFails("tokenizer.model", bytes).Message);
    }

    [SkippableFact]
    public void EveryTruncationOfARealModelFailsCleanly()
    {
        byte[] full = File.ReadAllBytes(SharedData.Require(SharedData.Stories + "/tokenizer.model"));
        int parsed = 0;
        for (int n = 0; n < full.Length; n++)
        {
            try { SentencePieceModelFile.Parse(full[..n], "tokenizer.model"); parsed++; }
            catch (EngineException e) { Assert.StartsWith("tokenizer.model: ", e.Message); }
        }
        using var dir = new TempDir();
        string path = dir.File("tokenizer.model");
        // Only the cut exactly before the last top-level field (the normalizer spec) is still a well-formed model.
        Assert.Equal(1, parsed);
        File.WriteAllBytes(path, full[..(full.Length / 2)]);
        var half = Assert.Throws<EngineException>(() => SpmTokenizer.Load(path));
        Assert.Contains("truncated", half.Message);
    }

    [Fact]
    public void InvalidJsonReportsLineAndPosition()
    {
        var e = LoadFails("tokenizer.json", Encoding.UTF8.GetBytes("{\n  \"model\": {\n    \"type\": \"BPE\",,\n  }\n}"));
        Assert.Contains("invalid JSON at line 3", e.Message);
        Assert.Contains("position", e.Message);
    }

    [Fact]
    public void NonByteLevelTokenizerJsonWithoutModelFileIsExplained()
    {
        var e = LoadFails("tokenizer.json", Encoding.UTF8.GetBytes("""{"model": {"type": "WordPiece", "vocab": {}}}"""));
        Assert.Contains("WordPiece", e.Message);
    }

    [SkippableFact]
    public void UnsupportedTokenizerJsonFallsBackToTheModelFile()
    {
        using var dir = new TempDir();
        File.Copy(SharedData.Require(SharedData.Stories + "/tokenizer.model"), dir.File("tokenizer.model"));
        File.WriteAllText(dir.File("tokenizer.json"), """{"model": {"type": "Unigram", "vocab": []}, "pre_tokenizer": {"type": "Metaspace"}}""");
        Assert.IsType<SpmTokenizer>(TokenizerLoader.Load(dir.Path));
    }

    [SkippableFact]
    public void SentencePieceStyleTokenizerJsonIsPreferredToTheModelFile()
    {
        // As transformers' fast tokenizers do: tokenizer.json wins when both are present and Engine can run it.
        using var dir = new TempDir();
        File.Copy(SharedData.Require(SharedData.Stories + "/tokenizer.model"), dir.File("tokenizer.model"));
        File.WriteAllText(dir.File("tokenizer.json"), """{"model": {"type": "BPE", "byte_fallback": true, "vocab": {"a": 0, "<0x62>": 1}, "merges": []}, "pre_tokenizer": {"type": "Metaspace"}}""");
        var tok = Assert.IsType<HfTokenizer>(TokenizerLoader.Load(dir.Path));
        Assert.Equal(TokenizerKind.SentencePieceBpe, tok.Kind);
        Assert.Equal(new[] { 0, 1 }, tok.EncodeText("ab"));
    }

    [Theory]
    [InlineData("merges", "\"q z\"", "not in model.vocab")]
    [InlineData("merges", "\"abc\"", "not two tokens")]
    [InlineData("merges", "5", "must be \"a b\"")]
    [InlineData("vocab_id", "-3", "non-negative integer id")]
    [InlineData("vocab_id", "2147483647", "out of range")]
    [InlineData("added_id", "-1", "non-negative")]
    [InlineData("pre", """{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}""", "not a regex .NET supports")]
    [InlineData("pre", """{"type": "Sequence", "pretokenizers": [{"type": "Digits"}, {"type": "ByteLevel"}]}""", "\"Digits\" is not supported")]
    [InlineData("pre", """{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}, {"type": "ByteLevel"}]}""", "Sideways")]
    [InlineData("normalizer", """{"type": "BertNormalizer"}""", "normalizer \"BertNormalizer\"")]
    [InlineData("normalizer", """{"type": "Replace", "pattern": {"String": ""}, "content": "x"}""", "non-empty")]
    [InlineData("decoder", """{"type": "WordPiece"}""", "decoder \"WordPiece\"")]
    [InlineData("post", """{"type": "BertProcessing"}""", "post_processor \"BertProcessing\"")]
    [InlineData("unk", "\"<nope>\"", "unk_token \"<nope>\" is not in model.vocab")]
    public void BadByteLevelJsonIsReported(string part, string value, string expected)
    {
        string merges = part == "merges" ? value : "\"a b\"";
        string vocabId = part == "vocab_id" ? value : "2";
        string addedId = part == "added_id" ? value : "3";
        string pre = part == "pre" ? value : """{"type": "ByteLevel", "add_prefix_space": false}""";
        string normalizer = part == "normalizer" ? value : "null";
        string decoder = part == "decoder" ? value : """{"type": "ByteLevel"}""";
        string post = part == "post" ? value : "null";
        string unk = part == "unk" ? value : "null";
        string json = "{\"added_tokens\": [{\"id\": " + addedId + ", \"content\": \"<eos>\", \"special\": true}],"
            + " \"normalizer\": " + normalizer + ", \"pre_tokenizer\": " + pre + ", \"decoder\": " + decoder + ", \"post_processor\": " + post + ","
            + " \"model\": {\"type\": \"BPE\", \"unk_token\": " + unk + ", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": " + vocabId + "}, \"merges\": [" + merges + "]}}";
        var e = LoadFails("tokenizer.json", Encoding.UTF8.GetBytes(json));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void EmptyFolderHasNoTokenizer()
    {
        using var dir = new TempDir();
        Assert.Null(TokenizerLoader.TryLoad(dir.Path));
        Assert.Contains("no tokenizer found", Assert.Throws<EngineException>(() => TokenizerLoader.Load(dir.Path)).Message);
    }

    [Fact]
    public void FromPiecesChecksItsTables()
    {
        var e = Assert.Throws<EngineException>(() => SpmTokenizer.FromPieces(new[] { "a", "b" }, new[] { 0f }, new[] { TokenType.Normal, TokenType.Normal }, new TokenizerSettings(), "x.gguf"));
        Assert.Contains("x.gguf", e.Message);
        e = Assert.Throws<EngineException>(() => SpmTokenizer.FromPieces(new[] { "a" }, new[] { 0f }, new[] { (TokenType)0 }, new TokenizerSettings(), "x.gguf"));
        Assert.Contains("token type", e.Message);
        e = Assert.Throws<EngineException>(() => SpmTokenizer.FromPieces(new[] { "a" }, new[] { 0f }, new[] { TokenType.Normal }, new TokenizerSettings { BosId = 7 }, "x.gguf"));
        Assert.Contains("bos id 7 is out of range", e.Message);
        e = Assert.Throws<EngineException>(() => TokenizerLoader.FromGgufVocabulary("bert", null, new[] { "a" }, null, new[] { TokenType.Normal }, null, new TokenizerSettings(), "x.gguf"));
        Assert.Contains("\"bert\" is not supported", e.Message);
    }

    [Fact]
    public void ByteBpeDecodeRejectsIdsOutOfRange()
    {
        var tok = HfTokenizer.FromVocabulary(new[] { "a", "b", "ab" }, new[] { TokenType.Normal, TokenType.Normal, TokenType.Normal }, new[] { "a b" }, "gpt-2", new TokenizerSettings());
        Assert.Equal(new[] { 2 }, tok.EncodeText("ab"));
        Assert.Contains("token id 3 is out of range", Assert.Throws<EngineException>(() => tok.Decode(new[] { 3 })).Message);
    }
}
