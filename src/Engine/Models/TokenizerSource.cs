using Engine.Tokenization;

namespace Engine.Models;

/// <summary>Where a command finds a tokenizer without loading weights.</summary>
public static class TokenizerSource
{
    /// <summary>
    /// The tokenizer of a folder (a model folder, or one that holds only tokenizer files such as
    /// ../shared/tokenizers/qwen3) or of a single model file (GGUF).
    /// </summary>
    public static TextTokenizer Load(string path)
    {
        if (Directory.Exists(path)) return TokenizerLoader.Load(path);
        if (!File.Exists(path)) throw new EngineException($"{path}: no such model folder or file");
        var parts = ModelLoader.OpenParts(path);
        parts.Weights.Dispose();
        return parts.Tokenizer ?? throw new EngineException($"{path}: the file has no tokenizer");
    }
}
