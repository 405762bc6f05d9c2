using Engine.Gguf;
using Engine.Gguf.Quantization;

namespace Engine.Tests.Gguf;

/// <summary>
/// A small but complete llama GGUF built in memory for reader and fuzz tests: 2 layers, hidden 32, 2 heads,
/// 1 KV head, FFN 256, a 17-piece SentencePiece vocabulary, and tensors in every supported type.
/// </summary>
public static class TinyGguf
{
    public const int Hidden = 32, Heads = 2, KvHeads = 1, HeadDim = 16, Ffn = 256, Layers = 2;

    public static readonly string[] Pieces =
        { "<unk>", "<s>", "</s>", "\u2581", "a", "b", "c", "\u2581a", "\u2581b", "ab", "bc", "\u2581ab", "abc", "\u2581abc", "ca", "\u2581c", "\u2581ca" };

    public static byte[] Build(uint alignment = 32)
    {
        var w = new GgufWriter(alignment);
        w.Add("general.architecture", GgufValue.Str("llama"));
        w.Add("general.name", GgufValue.Str("tiny"));
        w.Add("llama.context_length", GgufValue.U32(128));
        w.Add("llama.embedding_length", GgufValue.U32(Hidden));
        w.Add("llama.block_count", GgufValue.U32(Layers));
        w.Add("llama.feed_forward_length", GgufValue.U32(Ffn));
        w.Add("llama.rope.dimension_count", GgufValue.U32(HeadDim));
        w.Add("llama.attention.head_count", GgufValue.U32(Heads));
        w.Add("llama.attention.head_count_kv", GgufValue.U32(KvHeads));
        w.Add("llama.attention.layer_norm_rms_epsilon", GgufValue.F32(1e-5f));
        w.Add("llama.rope.freq_base", GgufValue.F32(10000f));
        w.Add("tokenizer.ggml.model", GgufValue.Str("llama"));
        w.Add("tokenizer.ggml.tokens", GgufValue.Strings(Pieces));
        w.Add("tokenizer.ggml.scores", GgufValue.Floats(Enumerable.Range(0, Pieces.Length).Select(i => -(float)i)));
        w.Add("tokenizer.ggml.token_type", GgufValue.Ints(Enumerable.Range(0, Pieces.Length).Select(i => i == 0 ? 2 : i < 3 ? 3 : 1)));
        w.Add("tokenizer.ggml.bos_token_id", GgufValue.U32(1));
        w.Add("tokenizer.ggml.eos_token_id", GgufValue.U32(2));
        w.Add("tokenizer.ggml.unknown_token_id", GgufValue.U32(0));
        w.Add("tokenizer.ggml.add_bos_token", GgufValue.Bool(true));
        w.Add("tokenizer.chat_template", GgufValue.Str("{{ messages }}"));
        w.Add("test.u8", GgufValue.Scalar(GgufValueType.UInt8, (byte)7));
        w.Add("test.i64s", GgufValue.Array(GgufValueType.Int64, new long[] { -1, 2, long.MaxValue }));
        w.Add("test.f64", GgufValue.Scalar(GgufValueType.Float64, 2.5));
        w.Add("test.bools", GgufValue.Array(GgufValueType.Bool, new[] { true, false }));

        var rng = new Random(5);
        void Tensor(string name, GgmlType type, params long[] dims)
        {
            long n = dims.Aggregate(1L, (a, d) => a * d);
            var values = Enumerable.Range(0, (int)n).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.2f).ToArray();
            if (name.Contains("norm")) Array.Fill(values, 1f);
            var bytes = new byte[GgmlTypes.RowBytes(type, dims[0]) * (n / dims[0])];
            GgmlCodec.Encode(type, values, bytes);
            w.AddTensor(name, dims, type, s => s.Write(bytes));
        }
        int vocab = Pieces.Length;
        Tensor("token_embd.weight", GgmlType.Q8_0, Hidden, vocab);
        for (int l = 0; l < Layers; l++)
        {
            Tensor($"blk.{l}.attn_norm.weight", GgmlType.F32, Hidden);
            Tensor($"blk.{l}.attn_q.weight", l == 0 ? GgmlType.F16 : GgmlType.Q4_0, Hidden, Heads * HeadDim);
            Tensor($"blk.{l}.attn_k.weight", l == 0 ? GgmlType.Q4_0 : GgmlType.Q5_0, Hidden, KvHeads * HeadDim);
            Tensor($"blk.{l}.attn_v.weight", GgmlType.BF16, Hidden, KvHeads * HeadDim);
            Tensor($"blk.{l}.attn_output.weight", GgmlType.Q5_0, Heads * HeadDim, Hidden);
            Tensor($"blk.{l}.ffn_norm.weight", GgmlType.F32, Hidden);
            Tensor($"blk.{l}.ffn_gate.weight", GgmlType.Q8_0, Hidden, Ffn);
            Tensor($"blk.{l}.ffn_up.weight", GgmlType.F16, Hidden, Ffn);
            Tensor($"blk.{l}.ffn_down.weight", l == 0 ? GgmlType.Q4_K : GgmlType.Q6_K, Ffn, Hidden);
        }
        Tensor("output_norm.weight", GgmlType.F32, Hidden);
        Tensor("output.weight", GgmlType.Q8_0, Hidden, vocab); // 17 rows × 34 bytes: not a multiple of the alignment
        using var ms = new MemoryStream();
        w.Write(ms);
        return ms.ToArray();
    }
}
