namespace Engine.Tokenization;

/// <summary>
/// The pre-tokenizer regexes of the common byte-level BPE families, as their tokenizer.json files write them,
/// and the names llama.cpp stores in GGUF (tokenizer.ggml.pre) for them.
/// </summary>
public static class PreTokenizerPatterns
{
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    public const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Qwen2 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The regex and ignore_merges flag for a llama.cpp pre-tokenizer name, or null when unknown.</summary>
    public static (string Pattern, bool IgnoreMerges)? ForLlamaCppName(string? name) => name switch
    {
        null or "" or "default" or "gpt-2" or "gpt2" => (Gpt2, false),
        // llama.cpp sets ignore_merges for the Llama-3 family, as its tokenizer.json does.
        "llama-bpe" or "llama3" or "smaug-bpe" => (Llama3, true),
        "qwen2" or "stablelm2" => (Qwen2, false),
        _ => null,
    };

    /// <summary>The llama.cpp name for a pattern (for GGUF export), or null when it is none of the known ones.</summary>
    public static string? LlamaCppNameOf(string pattern) => pattern switch
    {
        Gpt2 => "gpt-2",
        Llama3 => "llama-bpe",
        Qwen2 => "qwen2",
        _ => null,
    };
}
