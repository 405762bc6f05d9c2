using Engine.Tokenization;

namespace Engine.Gguf;

/// <summary>
/// The tokenizer as GGUF carries it (tokenizer.ggml.*): SentencePiece models as "llama" with scores and token
/// types, byte-level BPE models as "gpt2" with merges and a pre-tokenizer name llama.cpp recognises.
/// </summary>
public static partial class GgufTokenizerMetadata
{
    /// <summary>
    /// Entries for <paramref name="tokenizer"/>, padded to <paramref name="vocabSize"/> with unused "[PADn]" tokens
    /// when the model's embedding has more rows than the tokenizer has tokens (llama.cpp needs them to agree).
    /// </summary>
    public static List<KeyValuePair<string, GgufValue>> Build(TextTokenizer tokenizer, int vocabSize, string source)
    {
        int n = tokenizer.VocabSize;
        if (n > vocabSize)
            throw new EngineException($"{source}: the tokenizer has {n} tokens but the model's vocabulary is only {vocabSize}");
        if (tokenizer.Tokens.Count != n || tokenizer.TokenTypes.Count != n)
            throw new EngineException($"{source}: the tokenizer's token table is incomplete ({tokenizer.Tokens.Count} tokens, {tokenizer.TokenTypes.Count} types for {n} ids)");
        var tokens = new string[vocabSize];
        var types = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            tokens[i] = i < n ? tokenizer.Tokens[i] : $"[PAD{i}]";
            types[i] = i < n ? (int)tokenizer.TokenTypes[i] : (int)TokenType.Unused;
        }
        var m = new List<KeyValuePair<string, GgufValue>>();
        void Add(string key, GgufValue v) => m.Add(new(key, v));
        if (tokenizer.Kind == TokenizerKind.SentencePiece)
        {
            if (tokenizer.Scores.Count != n) throw new EngineException($"{source}: the SentencePiece tokenizer has {tokenizer.Scores.Count} scores for {n} tokens");
            var scores = new float[vocabSize];
            for (int i = 0; i < vocabSize; i++) scores[i] = i < n ? tokenizer.Scores[i] : -1000f;
            Add("tokenizer.ggml.model", GgufValue.Str("llama"));
            Add("tokenizer.ggml.pre", GgufValue.Str("default"));
            Add("tokenizer.ggml.tokens", GgufValue.Array(GgufValueType.String, tokens));
            Add("tokenizer.ggml.scores", GgufValue.Array(GgufValueType.Float32, scores));
            Add("tokenizer.ggml.token_type", GgufValue.Array(GgufValueType.Int32, types));
        }
        else
        {
            string pre = BpePreTokenizerName(tokenizer, source);
            Add("tokenizer.ggml.model", GgufValue.Str("gpt2"));
            Add("tokenizer.ggml.pre", GgufValue.Str(pre));
            Add("tokenizer.ggml.tokens", GgufValue.Array(GgufValueType.String, tokens));
            Add("tokenizer.ggml.token_type", GgufValue.Array(GgufValueType.Int32, types));
            Add("tokenizer.ggml.merges", GgufValue.Array(GgufValueType.String, tokenizer.Merges.ToArray()));
        }
        void Id(string key, int? id)
        {
            if (id is not int v) return;
            if (v < 0 || v >= vocabSize) throw new EngineException($"{source}: {key} {v} is outside the vocabulary (0..{vocabSize - 1})");
            Add($"tokenizer.ggml.{key}", GgufValue.U32((uint)v));
        }
        Id("bos_token_id", tokenizer.BosId);
        Id("eos_token_id", tokenizer.EosId);
        Id("unknown_token_id", tokenizer.UnkId);
        Id("padding_token_id", tokenizer.PadId);
        Add("tokenizer.ggml.add_bos_token", GgufValue.Bool(tokenizer.AddBos));
        Add("tokenizer.ggml.add_eos_token", GgufValue.Bool(tokenizer.AddEos));
        if (!string.IsNullOrEmpty(tokenizer.ChatTemplate)) Add("tokenizer.chat_template", GgufValue.Str(tokenizer.ChatTemplate));
        return m;
    }
}
