using Engine.Tokenization;

namespace Engine.Gguf;

public static partial class GgufTokenizerMetadata
{
    /// <summary>
    /// SentencePiece-style BPE from a tokenizer.json (byte fallback, spaces as "▁"), written so that llama.cpp
    /// tokenizes like Hugging Face:
    /// <list type="bullet">
    /// <item>With a dummy prefix (Mistral, Llama 2: a Prepend "▁" normalizer) as "llama", the SentencePiece
    /// tokenizer, which is what llama.cpp's converter writes for such folders. Its converter gives every token the
    /// score -1000 there, which makes llama.cpp merge leftmost-first instead of by rank; Engine instead scores each
    /// token by minus the rank of the first merge that builds it, so that llama.cpp's highest-score-first merging
    /// follows the merge ranks. The merges are written too (llama.cpp ignores them for "llama"), so that Engine
    /// reads back the exact tokenizer.</item>
    /// <item>Without a prefix (Gemma 3: a Replace normalizer) as "gpt2" with pre-tokenizer "gemma4": llama.cpp's
    /// BPE over raw UTF-8 with spaces as "▁", whole lines merged by rank and &lt;0xXX&gt; byte fallback, the layout its
    /// converter writes for Gemma 4 and other SentencePiece-style BPE vocabularies.</item>
    /// </list>
    /// </summary>
    static void AddSentencePieceBpe(GgufMetadataBuilder m, HfTokenizer tokenizer, string[] tokens, int[] types,
        int vocabSize, string source)
    {
        if (!tokenizer.ByteFallback || !tokenizer.EscapesSpaces)
            throw new EngineException($"{source}: this tokenizer.json BPE (byte_fallback {tokenizer.ByteFallback}, spaces as \"▁\" {tokenizer.EscapesSpaces}) "
                + "has no llama.cpp equivalent (supported: byte-level BPE, and SentencePiece-style BPE with byte fallback as Mistral and Gemma write it)");
        if (tokenizer.AddsDummyPrefix)
        {
            var firstRank = tokenizer.MergeRanksByToken();
            float unreachable = -(tokenizer.Merges.Count + 1f);
            var scores = new float[vocabSize];
            for (int i = 0; i < vocabSize; i++) scores[i] = firstRank.TryGetValue(i, out int rank) ? -rank : unreachable;
            m.Add(GgufKeys.TokenizerModel, "llama");
            m.Add(GgufKeys.TokenizerPre, "default");
            m.Add(GgufKeys.Tokens, tokens);
            m.Add(GgufKeys.Scores, scores);
            m.Add(GgufKeys.TokenTypes, types);
            m.Add(GgufKeys.Merges, tokenizer.Merges.ToArray());
            m.Add(GgufKeys.AddSpacePrefix, true);
        }
        else
        {
            m.Add(GgufKeys.TokenizerModel, "gpt2");
            m.Add(GgufKeys.TokenizerPre, TokenizerLoader.GemmaPreTokenizer);
            m.Add(GgufKeys.Tokens, tokens);
            m.Add(GgufKeys.TokenTypes, types);
            m.Add(GgufKeys.Merges, tokenizer.Merges.ToArray());
        }
    }

    static HfTokenizer RequireHf(TextTokenizer tokenizer, string source) =>
        tokenizer as HfTokenizer ?? throw new EngineException($"{source}: a SentencePiece-style BPE tokenizer must come from a tokenizer.json");

    /// <summary>
    /// What llama.cpp cannot reproduce of this tokenizer, as an export notice (null when nothing): added tokens with
    /// lstrip/rstrip/single_word/normalized flags, which GGUF cannot carry (llama.cpp matches them as plain strings),
    /// and a normalizer other than the SentencePiece-style space escaping (Qwen's NFC included).
    /// </summary>
    public static string? Notice(TextTokenizer tokenizer)
    {
        if (tokenizer is not HfTokenizer hf) return null;
        var parts = new List<string>();
        if (hf.AddedTokensWithFlags > 0)
            parts.Add($"{hf.AddedTokensWithFlags} added tokens have lstrip/rstrip/single_word/normalized flags, which GGUF cannot carry");
        if (hf.NormalizerDescription is { } n && n is not ("Replace" or "Prepend, Replace"))
            parts.Add($"its normalizer ({n}) has no GGUF key and llama.cpp does not apply it (Engine restores NFC for \"qwen2\" on import)");
        return parts.Count == 0 ? null : "notice: llama.cpp may tokenize some texts differently: " + string.Join("; ", parts);
    }
}
