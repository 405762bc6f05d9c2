using Engine.Tokenization;

namespace Engine.Gguf;

/// <summary>Builds Engine's tokenizer from a GGUF file's tokenizer.ggml.* metadata.</summary>
public static class GgufTokenizerReader
{
    /// <summary>The tokenizer, or null when the file carries none (no tokenizer.ggml.model).</summary>
    public static TextTokenizer? TryRead(GgufFile file)
    {
        string src = file.Source;
        string? model = GgufModelMetadata.GetString(file, "tokenizer.ggml.model");
        if (model is null) return null;
        var tokens = ArrayOf<string>(file, "tokenizer.ggml.tokens", GgufValueType.String)
            ?? throw new EngineException($"{src}: tokenizer.ggml.model is set but tokenizer.ggml.tokens is missing");
        var scores = ArrayOf<float>(file, "tokenizer.ggml.scores", GgufValueType.Float32);
        var rawTypes = ArrayOf<int>(file, "tokenizer.ggml.token_type", GgufValueType.Int32);
        var merges = ArrayOf<string>(file, "tokenizer.ggml.merges", GgufValueType.String);
        if (rawTypes != null && rawTypes.Length != tokens.Length)
            throw new EngineException($"{src}: {tokens.Length} tokens but {rawTypes.Length} token types");
        if (scores != null && scores.Length != tokens.Length)
            throw new EngineException($"{src}: {tokens.Length} tokens but {scores.Length} scores");
        var types = rawTypes?.Select(t => (TokenType)t).ToArray() ?? Enumerable.Repeat(TokenType.Normal, tokens.Length).ToArray();
        var settings = new TokenizerSettings
        {
            BosId = Id(file, "tokenizer.ggml.bos_token_id", tokens.Length),
            EosId = Id(file, "tokenizer.ggml.eos_token_id", tokens.Length),
            UnkId = Id(file, "tokenizer.ggml.unknown_token_id", tokens.Length),
            PadId = Id(file, "tokenizer.ggml.padding_token_id", tokens.Length),
            AddBos = GgufModelMetadata.GetBool(file, "tokenizer.ggml.add_bos_token"),
            AddEos = GgufModelMetadata.GetBool(file, "tokenizer.ggml.add_eos_token"),
            ChatTemplate = GgufModelMetadata.GetString(file, "tokenizer.chat_template"),
            AddSpacePrefix = GgufModelMetadata.GetBool(file, "tokenizer.ggml.add_space_prefix") ?? true,
            RemoveExtraWhitespaces = GgufModelMetadata.GetBool(file, "tokenizer.ggml.remove_extra_whitespaces") ?? false,
        };
        return TokenizerLoader.FromGgufVocabulary(model, GgufModelMetadata.GetString(file, "tokenizer.ggml.pre"),
            tokens, scores, types, merges, settings, src);
    }

    static T[]? ArrayOf<T>(GgufFile file, string key, GgufValueType elementType)
    {
        if (!file.Metadata.TryGetValue(key, out var v)) return null;
        if (v.Type != GgufValueType.Array || v.ElementType != elementType)
            throw new EngineException($"{file.Source}: {key} must be an array of {elementType} (got {(v.Type == GgufValueType.Array ? $"an array of {v.ElementType}" : v.Type.ToString())})");
        return (T[])v.Value;
    }

    static int? Id(GgufFile file, string key, int vocabSize)
    {
        int? id = GgufModelMetadata.GetInt(file, key);
        if (id is int i && i >= vocabSize) throw new EngineException($"{file.Source}: {key} {i} is outside the vocabulary (0..{vocabSize - 1})");
        return id;
    }
}
