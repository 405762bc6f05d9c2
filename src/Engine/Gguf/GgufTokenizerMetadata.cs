using Engine.Tokenization;

namespace Engine.Gguf;

/// <summary>
/// The tokenizer as GGUF carries it (tokenizer.ggml.*): SentencePiece models as "llama" with scores and token
/// types, byte-level BPE models as "gpt2" with merges and a pre-tokenizer name llama.cpp recognises, and
/// SentencePiece-style BPE tokenizer.json files (Mistral, Gemma) as described in GgufTokenizerMetadata.Spm.cs.
/// </summary>
public static partial class GgufTokenizerMetadata
{
    /// <summary>The tokens past <paramref name="vocabSize"/> when all of them are added (control or user-defined) tokens,
    /// which can be left out of a model that has no embedding rows for them; null when there is a normal token among them.</summary>
    public static IReadOnlyList<string>? DroppedAddedTokens(TextTokenizer tokenizer, int vocabSize)
    {
        var extra = Enumerable.Range(vocabSize, Math.Max(0, tokenizer.VocabSize - vocabSize)).ToList();
        if (extra.Any(id => tokenizer.TokenTypes[id] is not (TokenType.Control or TokenType.UserDefined))) return null;
        return extra.Select(id => tokenizer.Tokens[id]).ToList();
    }

    /// <summary>
    /// Entries for <paramref name="tokenizer"/>, padded to <paramref name="vocabSize"/> with unused "[PADn]" tokens
    /// when the model's embedding has more rows than the tokenizer has tokens (llama.cpp needs them to agree). Added
    /// tokens past the embedding (Gemma 3's tokenizer lists <c>&lt;image_soft_token&gt;</c> at 262144, which the
    /// text-only 1B model has no row for) are left out, as llama.cpp's SentencePiece vocabulary of that model leaves it.
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, GgufValue>> Build(TextTokenizer tokenizer, int vocabSize, string source)
    {
        int n = tokenizer.VocabSize;
        if (n > vocabSize && DroppedAddedTokens(tokenizer, vocabSize) is null)
            throw new EngineException($"{source}: the tokenizer has {n} tokens but the model's vocabulary is only {vocabSize}");
        n = Math.Min(n, vocabSize);
        if (tokenizer.Tokens.Count < n || tokenizer.TokenTypes.Count < n)
            throw new EngineException($"{source}: the tokenizer's token table is incomplete ({tokenizer.Tokens.Count} tokens, {tokenizer.TokenTypes.Count} types for {n} ids)");
        var tokens = new string[vocabSize];
        var types = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            tokens[i] = i < n ? tokenizer.Tokens[i] : $"[PAD{i}]";
            types[i] = i < n ? (int)tokenizer.TokenTypes[i] : (int)TokenType.Unused;
        }
        var m = new GgufMetadataBuilder();
        if (tokenizer.Kind == TokenizerKind.SentencePiece)
        {
            if (tokenizer.Scores.Count < n) throw new EngineException($"{source}: the SentencePiece tokenizer has {tokenizer.Scores.Count} scores for {n} tokens");
            var scores = new float[vocabSize];
            for (int i = 0; i < vocabSize; i++) scores[i] = i < n ? tokenizer.Scores[i] : -1000f;
            m.Add(GgufKeys.TokenizerModel, "llama");
            m.Add(GgufKeys.TokenizerPre, "default");
            m.Add(GgufKeys.Tokens, tokens);
            m.Add(GgufKeys.Scores, scores);
            m.Add(GgufKeys.TokenTypes, types);
            if (tokenizer is SpmTokenizer spm)
            {
                // llama.cpp honours add_space_prefix; remove_extra_whitespaces it reads but does not apply to
                // SentencePiece vocabularies (see RemovesExtraWhitespace), so it is kept for Engine's own import.
                m.Add(GgufKeys.AddSpacePrefix, spm.Normalization.AddDummyPrefix);
                if (spm.Normalization.RemoveExtraWhitespaces) m.Add(GgufKeys.RemoveExtraWhitespaces, true);
            }
        }
        else if (tokenizer.Kind == TokenizerKind.SentencePieceBpe)
            AddSentencePieceBpe(m, RequireHf(tokenizer, source), tokens, types, vocabSize, source);
        else
        {
            string pre = BpePreTokenizerName(tokenizer, source);
            m.Add(GgufKeys.TokenizerModel, "gpt2");
            m.Add(GgufKeys.TokenizerPre, pre);
            m.Add(GgufKeys.Tokens, tokens);
            m.Add(GgufKeys.TokenTypes, types);
            m.Add(GgufKeys.Merges, tokenizer.Merges.ToArray());
        }
        void Id(GgufKey key, int? id)
        {
            if (id is not int v) return;
            if (v < 0 || v >= vocabSize) throw new EngineException($"{source}: {key} {v} is outside the vocabulary (0..{vocabSize - 1})");
            m.Add(key, v);
        }
        Id(GgufKeys.BosTokenId, tokenizer.BosId);
        Id(GgufKeys.EosTokenId, tokenizer.EosId);
        Id(GgufKeys.UnknownTokenId, tokenizer.UnkId);
        Id(GgufKeys.PaddingTokenId, tokenizer.PadId);
        m.Add(GgufKeys.AddBosToken, tokenizer.AddBos);
        m.Add(GgufKeys.AddEosToken, tokenizer.AddEos);
        if (!string.IsNullOrEmpty(tokenizer.ChatTemplate)) m.Add(GgufKeys.ChatTemplate, tokenizer.ChatTemplate);
        return m.Entries;
    }

    /// <summary>
    /// Whether the tokenizer collapses and trims spaces before encoding (SentencePiece's remove_extra_whitespaces),
    /// which llama.cpp's SentencePiece tokenizer never does: texts with leading, trailing or repeated spaces then
    /// tokenize differently in llama.cpp, whatever the GGUF file says.
    /// </summary>
    public static bool RemovesExtraWhitespace(TextTokenizer tokenizer) =>
        tokenizer is SpmTokenizer { Normalization.RemoveExtraWhitespaces: true };

    public const string WhitespaceNotice =
        "notice: the SentencePiece model removes extra whitespace before encoding (remove_extra_whitespaces); llama.cpp's "
        + "SentencePiece tokenizer does not, so texts with leading, trailing or repeated spaces tokenize differently in llama.cpp";
}
