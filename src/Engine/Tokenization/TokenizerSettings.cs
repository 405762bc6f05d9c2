namespace Engine.Tokenization;

/// <summary>
/// Special tokens and flags for building a tokenizer from a bare vocabulary (a GGUF file's
/// tokenizer.ggml.* keys) rather than from a Hugging Face folder.
/// </summary>
public sealed record TokenizerSettings
{
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public int? UnkId { get; init; }
    public int? PadId { get; init; }
    /// <summary>Null: the kind's default (SentencePiece adds BOS, byte-level BPE does not).</summary>
    public bool? AddBos { get; init; }
    public bool? AddEos { get; init; }
    public string? ChatTemplate { get; init; }
    /// <summary>SentencePiece: prepend "▁" to the text (GGUF tokenizer.ggml.add_space_prefix; llama.cpp's default is true).</summary>
    public bool AddSpacePrefix { get; init; } = true;
    /// <summary>SentencePiece: trim and collapse runs of spaces first (GGUF tokenizer.ggml.remove_extra_whitespaces).</summary>
    public bool RemoveExtraWhitespaces { get; init; }
}

/// <summary>The SentencePiece normalizer flags that the encoder honours.</summary>
public sealed record SpmNormalization(bool AddDummyPrefix = true, bool RemoveExtraWhitespaces = false, bool EscapeWhitespaces = true);
