namespace Engine.Tokenization;

/// <summary>
/// SentencePiece: a tokenizer.model run as llama.cpp runs it. ByteLevelBpe: a byte-level tokenizer.json (GPT-2,
/// Llama 3, Qwen). SentencePieceBpe: a SentencePiece-style BPE with byte fallback written as tokenizer.json
/// (Mistral and Llama 2 without tokenizer.model, Gemma 3).
/// </summary>
public enum TokenizerKind { SentencePiece, ByteLevelBpe, SentencePieceBpe }

/// <summary>Token types as SentencePiece and GGUF number them.</summary>
public enum TokenType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

/// <summary>
/// A model's tokenizer: text ↔ ids, its special tokens and the settings from <c>tokenizer_config.json</c>,
/// and the vocabulary tables that GGUF export writes.
/// </summary>
public abstract class TextTokenizer
{
    public abstract TokenizerKind Kind { get; }
    public abstract int VocabSize { get; }

    public int? BosId { get; init; }
    public int? EosId { get; init; }
    public int? UnkId { get; init; }
    public int? PadId { get; init; }
    public bool AddBos { get; init; }
    public bool AddEos { get; init; }
    /// <summary>The Jinja chat template from tokenizer_config.json, if any.</summary>
    public string? ChatTemplate { get; init; }
    /// <summary>Tokens the template writes as text (e.g. bos_token = "&lt;s&gt;").</summary>
    public IReadOnlyDictionary<string, string> SpecialTokenStrings { get; init; } = new Dictionary<string, string>();

    /// <summary>Encodes text without adding BOS/EOS. Special-token strings in the text map to their ids when
    /// <paramref name="parseSpecial"/> (as HF tokenizers do for chat-formatted text).</summary>
    public abstract IReadOnlyList<int> EncodeText(string text, bool parseSpecial = true);

    /// <summary>
    /// Text of the ids; special (control) tokens are dropped when <paramref name="skipSpecial"/>. SentencePiece
    /// drops the dummy-prefix space only right after BOS (or another special token), so
    /// <c>Decode(Encode(text)) == text</c> while generated continuation ids keep their leading space.
    /// Throws <see cref="EngineException"/> for an id outside the vocabulary.
    /// </summary>
    public abstract string Decode(IEnumerable<int> ids, bool skipSpecial = true);

    /// <summary>Encodes and adds BOS/EOS as the tokenizer config says.</summary>
    public int[] Encode(string text, bool addSpecial = true, bool parseSpecial = true)
    {
        var body = EncodeText(text, parseSpecial);
        var ids = new List<int>(body.Count + 2);
        if (addSpecial && AddBos && BosId is int b) ids.Add(b);
        ids.AddRange(body);
        if (addSpecial && AddEos && EosId is int e) ids.Add(e);
        return ids.ToArray();
    }

    /// <summary>Vocabulary as GGUF writes it: piece strings, scores and types, indexed by id.</summary>
    public abstract IReadOnlyList<string> Tokens { get; }
    /// <summary>SentencePiece scores by id; empty for tokenizer.json BPE, which ranks merges instead.</summary>
    public abstract IReadOnlyList<float> Scores { get; }
    public abstract IReadOnlyList<TokenType> TokenTypes { get; }
    /// <summary>BPE merges ("a b"), empty for SentencePiece.</summary>
    public virtual IReadOnlyList<string> Merges => Array.Empty<string>();

    public bool IsSpecial(int id) => id >= 0 && id < TokenTypes.Count && TokenTypes[id] is TokenType.Control;

    /// <summary>Writes the tokenizer files (and tokenizer_config.json) into a Hugging Face model folder.</summary>
    public abstract void SaveTo(string directory);
}
