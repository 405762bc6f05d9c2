using Engine.Tokenization;

namespace Engine.Gguf;

/// <summary>Builds Engine's tokenizer from a GGUF file's tokenizer.ggml.* metadata.</summary>
public static class GgufTokenizerReader
{
    /// <summary>The tokenizer, or null when the file carries none (no tokenizer.ggml.model).</summary>
    public static TextTokenizer? TryRead(GgufFile file)
    {
        string src = file.Source;
        string? model = file.GetString(GgufKeys.TokenizerModel);
        if (model is null) return null;
        var tokens = file.GetArray<string>(GgufKeys.Tokens)
            ?? throw new EngineException($"{src}: {GgufKeys.TokenizerModel} is set but {GgufKeys.Tokens} is missing");
        var scores = file.GetArray<float>(GgufKeys.Scores);
        var rawTypes = file.GetArray<int>(GgufKeys.TokenTypes);
        var merges = file.GetArray<string>(GgufKeys.Merges);
        if (rawTypes != null && rawTypes.Length != tokens.Length)
            throw new EngineException($"{src}: {tokens.Length} tokens but {rawTypes.Length} token types");
        if (scores != null && scores.Length != tokens.Length)
            throw new EngineException($"{src}: {tokens.Length} tokens but {scores.Length} scores");
        var types = rawTypes?.Select(t => (TokenType)t).ToArray() ?? Enumerable.Repeat(TokenType.Normal, tokens.Length).ToArray();
        var settings = new TokenizerSettings
        {
            BosId = Id(file, GgufKeys.BosTokenId, tokens.Length),
            EosId = Id(file, GgufKeys.EosTokenId, tokens.Length),
            UnkId = Id(file, GgufKeys.UnknownTokenId, tokens.Length),
            PadId = Id(file, GgufKeys.PaddingTokenId, tokens.Length),
            AddBos = file.GetBool(GgufKeys.AddBosToken),
            AddEos = file.GetBool(GgufKeys.AddEosToken),
            ChatTemplate = file.GetString(GgufKeys.ChatTemplate),
            AddSpacePrefix = file.GetBool(GgufKeys.AddSpacePrefix) ?? true,
            RemoveExtraWhitespaces = file.GetBool(GgufKeys.RemoveExtraWhitespaces) ?? false,
        };
        return TokenizerLoader.FromGgufVocabulary(model, file.GetString(GgufKeys.TokenizerPre), tokens, scores, types, merges, settings, src);
    }

    static int? Id(GgufFile file, GgufKey key, int vocabSize)
    {
        int? id = file.GetInt(key);
        if (id is int i && i >= vocabSize) throw new EngineException($"{file.Source}: {key} {i} is outside the vocabulary (0..{vocabSize - 1})");
        return id;
    }
}
