namespace Engine.Tokenization;

public static class TokenizerLoader
{
    /// <summary>
    /// Loads the tokenizer of a Hugging Face folder, or null when the folder has none: tokenizer.json when Engine
    /// supports it (as transformers' fast tokenizers prefer it), else tokenizer.model (SentencePiece), with
    /// tokenizer_config.json's settings.
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
            if (json.Unsupported is null) return HfTokenizer.FromJson(json, config);
            if (!haveModel)
                throw new EngineException($"{jsonPath}: {json.Unsupported}, and the folder has no tokenizer.model to use instead");
        }
        return SpmTokenizer.Load(modelPath, config);
    }

    public static TextTokenizer Load(string directory) =>
        TryLoad(directory) ?? throw new EngineException($"{directory}: no tokenizer found (expected tokenizer.model or tokenizer.json)");

    /// <summary>
    /// Builds a tokenizer from a GGUF vocabulary: tokenizer.ggml.model "llama" (SentencePiece: scores; or, with
    /// merges, the SentencePiece-style BPE Engine exports for tokenizer.json-only Mistral/Llama 2 folders), "gpt2"
    /// (BPE with merges and tokenizer.ggml.pre: byte-level, or "gemma4" for SentencePiece-style BPE) or "gemma4".
    /// </summary>
    public static TextTokenizer FromGgufVocabulary(string model, string? preTokenizer, IReadOnlyList<string> tokens,
        IReadOnlyList<float>? scores, IReadOnlyList<TokenType> types, IReadOnlyList<string>? merges, TokenizerSettings settings, string source)
    {
        IReadOnlyList<string> Merges() =>
            merges ?? throw new EngineException($"{source}: tokenizer.ggml.merges is missing (needed by a BPE vocabulary)");
        switch (model)
        {
            case "llama" when merges is not null:
                return HfTokenizer.FromSentencePieceVocabulary(tokens, types, merges, settings.AddSpacePrefix, settings, source);
            case "llama":
                return SpmTokenizer.FromPieces(tokens, scores ?? throw new EngineException($"{source}: tokenizer.ggml.scores is missing (needed by a SentencePiece vocabulary)"),
                    types, settings, source);
            case "gemma4":
            case "gpt2" when preTokenizer == GemmaPreTokenizer:
                return HfTokenizer.FromSentencePieceVocabulary(tokens, types, Merges(), dummyPrefix: false, settings, source);
            case "gpt2":
                return HfTokenizer.FromVocabulary(tokens, types, Merges(), preTokenizer, settings, source);
            default:
                throw new EngineException($"{source}: tokenizer model \"{model}\" is not supported (expected \"llama\", \"gpt2\" or \"gemma4\")");
        }
    }

    /// <summary>llama.cpp's name for SentencePiece-style BPE without a dummy prefix (spaces as "▁", merges over whole lines).</summary>
    public const string GemmaPreTokenizer = "gemma4";
}
