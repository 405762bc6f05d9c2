using Engine.Tokenization;

namespace Engine.Gguf;

public static partial class GgufTokenizerMetadata
{
    /// <summary>
    /// llama.cpp picks its pre-tokenizer by name, not by regex: the tokenizer's regex must be one whose
    /// llama.cpp name is known, or llama.cpp would split text differently (a common conversion failure).
    /// </summary>
    static string BpePreTokenizerName(TextTokenizer tokenizer, string source)
    {
        string? pattern = (tokenizer as HfTokenizer)?.PreTokenizerPattern;
        return (pattern is null ? null : PreTokenizerPatterns.LlamaCppNameOf(pattern))
            ?? throw new EngineException($"{source}: the byte-level BPE pre-tokenizer is not one llama.cpp recognises by name "
                + "(supported: GPT-2 → gpt-2, Llama 3 → llama-bpe, Qwen2 → qwen2)" + (pattern is null ? "" : $"; its regex is {pattern}"));
    }
}
