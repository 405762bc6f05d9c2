namespace Engine.Tokenization;

public static class TokenizerLoader
{
    /// <summary>
    /// Loads the tokenizer of a Hugging Face folder, or null when the folder has none: tokenizer.json when it
    /// describes a byte-level BPE, else tokenizer.model (SentencePiece), with tokenizer_config.json's settings.
    /// </summary>
    public static TextTokenizer? TryLoad(string directory)
    {
        if (!Directory.Exists(directory)) return null;
        string jsonPath = Path.Combine(directory, HfTokenizerJson.FileName);
        string modelPath = Path.Combine(directory, SpmTokenizer.ModelFileName);
        bool haveJson = File.Exists(jsonPath), haveModel = File.Exists(modelPath);
        if (!haveJson && !haveModel) return null;
        var config = TokenizerConfig.Load(directory);
        if (haveJson)
        {
            var json = HfTokenizerJson.Load(jsonPath);
            if (json.IsByteLevelBpe) return ByteBpeTokenizer.FromJson(json, config);
            if (!haveModel)
                throw new EngineException($"{jsonPath}: {json.WhyNotByteLevelBpe}; only byte-level BPE tokenizer.json files are supported (SentencePiece models need tokenizer.model)");
        }
        return SpmTokenizer.Load(modelPath, config);
    }

    public static TextTokenizer Load(string directory) =>
        TryLoad(directory) ?? throw new EngineException($"{directory}: no tokenizer found (expected tokenizer.model or tokenizer.json)");

    /// <summary>
    /// Builds a tokenizer from a GGUF vocabulary: tokenizer.ggml.model "llama" (SentencePiece; uses scores) or
    /// "gpt2" (byte-level BPE; uses merges and tokenizer.ggml.pre).
    /// </summary>
    public static TextTokenizer FromGgufVocabulary(string model, string? preTokenizer, IReadOnlyList<string> tokens,
        IReadOnlyList<float>? scores, IReadOnlyList<TokenType> types, IReadOnlyList<string>? merges, TokenizerSettings settings, string source)
    {
        switch (model)
        {
            case "llama":
                return SpmTokenizer.FromPieces(tokens, scores ?? throw new EngineException($"{source}: tokenizer.ggml.scores is missing (needed by a SentencePiece vocabulary)"),
                    types, settings, source);
            case "gpt2":
                return ByteBpeTokenizer.FromVocabulary(tokens, types,
                    merges ?? throw new EngineException($"{source}: tokenizer.ggml.merges is missing (needed by a BPE vocabulary)"),
                    preTokenizer, settings, source);
            default:
                throw new EngineException($"{source}: tokenizer model \"{model}\" is not supported (expected \"llama\" or \"gpt2\")");
        }
    }
}
