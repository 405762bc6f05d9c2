namespace Engine.Tokenization;

public static class TokenizerLoader
{
    /// <summary>Loads the tokenizer of a Hugging Face folder, or null when the folder has none.</summary>
    public static TextTokenizer? TryLoad(string directory) => null; // filled in by the tokenizer work

    public static TextTokenizer Load(string directory) =>
        TryLoad(directory) ?? throw new EngineException($"{directory}: no tokenizer found (expected tokenizer.model or tokenizer.json)");
}
