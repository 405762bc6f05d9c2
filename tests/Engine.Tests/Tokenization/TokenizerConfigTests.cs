using Engine.Tests.Infrastructure;
using Engine.Tokenization;

namespace Engine.Tests.Tokenization;

public class TokenizerConfigTests
{
    static string StoriesModel => SharedData.Require(SharedData.Stories + "/tokenizer.model");

    static TextTokenizer LoadStoriesWith(TempDir dir, string config, string? chatTemplateFile = null)
    {
        File.Copy(StoriesModel, dir.File("tokenizer.model"));
        File.WriteAllText(dir.File("tokenizer_config.json"), config);
        if (chatTemplateFile is not null) File.WriteAllText(dir.File("chat_template.jinja"), chatTemplateFile);
        return TokenizerLoader.Load(dir.Path);
    }

    [SkippableFact]
    public void StoriesFolderConfig()
    {
        var tok = TokenizerLoader.Load(SharedData.Require(SharedData.Stories));
        Assert.IsType<SpmTokenizer>(tok);
        Assert.Equal((1, 2, 0), (tok.BosId, tok.EosId, tok.UnkId));
        Assert.True(tok.AddBos);
        Assert.False(tok.AddEos);
        Assert.Null(tok.ChatTemplate);
    }

    [SkippableFact]
    public void TokensAsStringsOrObjectsAndAddFlags()
    {
        using var dir = new TempDir();
        var tok = LoadStoriesWith(dir, """
            {"add_bos_token": false, "add_eos_token": true,
             "bos_token": {"content": "<s>", "lstrip": false, "special": true},
             "eos_token": "</s>", "unk_token": {"content": "<unk>"}, "pad_token": "</s>"}
            """);
        Assert.Equal((1, 2, 0, 2), (tok.BosId, tok.EosId, tok.UnkId, tok.PadId));
        Assert.False(tok.AddBos);
        Assert.True(tok.AddEos);
        var ids = tok.Encode("Once upon a time");
        Assert.Equal(SharedData.StoriesGreedyIds.Take(4).Append(2), ids);
        Assert.Equal("</s>", tok.SpecialTokenStrings["pad_token"]);
    }

    [SkippableFact]
    public void ChatTemplateStringListAndFile()
    {
        using (var dir = new TempDir())
            Assert.Equal("{{ bos_token }}", LoadStoriesWith(dir, """{"chat_template": "{{ bos_token }}"}""").ChatTemplate);
        using (var dir = new TempDir())
            Assert.Equal("D", LoadStoriesWith(dir, """{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}""").ChatTemplate);
        using (var dir = new TempDir())
            Assert.Null(LoadStoriesWith(dir, """{"chat_template": [{"name": "rag", "template": "R"}]}""").ChatTemplate);
        using (var dir = new TempDir())
            Assert.Equal("from file", LoadStoriesWith(dir, "{}", chatTemplateFile: "from file").ChatTemplate);
    }

    [SkippableFact]
    public void AddedTokensDecoderExtendsTheVocabularyAndSurvivesSaving()
    {
        using var dir = new TempDir();
        var tok = LoadStoriesWith(dir, """
            {"pad_token": "<pad>", "added_tokens_decoder": {
               "1": {"content": "<s>", "special": true},
               "512": {"content": "<pad>", "special": true},
               "513": {"content": "<|im_start|>", "special": false}}}
            """);
        Assert.Equal(514, tok.VocabSize);
        Assert.Equal(512, tok.PadId);
        Assert.Equal(TokenType.Control, tok.TokenTypes[512]);
        Assert.Equal(TokenType.UserDefined, tok.TokenTypes[513]);
        var ids = tok.EncodeText("<|im_start|>Once<pad>");
        Assert.Equal(new[] { 513, SharedData.StoriesGreedyIds[0], 512 }, ids);
        Assert.Equal("<|im_start|>Once", tok.Decode(ids));
        // Without special parsing "<pad>" is text, the non-special added token is still matched whole.
        var literal = tok.EncodeText("<|im_start|>Once<pad>", parseSpecial: false);
        Assert.Equal(513, literal[0]);
        Assert.DoesNotContain(512, literal);

        using var saved = new TempDir();
        tok.SaveTo(saved.Path);
        var back = TokenizerLoader.Load(saved.Path);
        Assert.Equal(tok.Tokens, back.Tokens);
        Assert.Equal(tok.TokenTypes, back.TokenTypes);
        Assert.Equal(512, back.PadId);
        Assert.Equal(ids, back.EncodeText("<|im_start|>Once<pad>"));
    }

    [SkippableTheory]
    [InlineData("""{"added_tokens_decoder": {"1": {"content": "<x>", "special": true}}}""", "added token 1")]
    [InlineData("""{"added_tokens_decoder": {"600": {"content": "<x>", "special": true}}}""", "out of range")]
    [InlineData("""{"added_tokens_decoder": {"abc": {"content": "<x>"}}}""", "not a token id")]
    [InlineData("""{"added_tokens_decoder": {"2147483647": {"content": "<x>"}}}""", "out of range")]
    [InlineData("""{"bos_token": "<nope>"}""", "bos_token \"<nope>\" is not in the vocabulary")]
    [InlineData("""{"eos_token": 5}""", "\"eos_token\" must be")]
    [InlineData("""{"add_bos_token": "yes"}""", "\"add_bos_token\" must be true or false")]
    [InlineData("""{"chat_template": 3}""", "\"chat_template\" must be")]
    [InlineData("[1, 2]", "expected a JSON object")]
    [InlineData("{\n  \"add_bos_token\": true,\n  \"bos_token\": \"<s>\"\n  \"eos_token\": \"</s>\"\n}", "line 4")]
    public void BadConfigsAreReportedWithTheFileName(string config, string expected)
    {
        using var dir = new TempDir();
        var e = Assert.Throws<EngineException>(() => LoadStoriesWith(dir, config));
        Assert.Contains("tokenizer_config.json", e.Message);
        Assert.Contains(expected, e.Message);
    }
}
