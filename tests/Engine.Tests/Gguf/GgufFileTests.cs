using Engine.Gguf;
using Engine.Gguf.Quantization;
using Engine.Models;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Gguf;

/// <summary>The GGUF writer and reader against each other and against the format's rules.</summary>
public class GgufFileTests
{
    [Fact]
    public void WriterOutputParsesBackWithEveryValueType()
    {
        var bytes = TinyGguf.Build();
        using var f = GgufFile.FromBytes(bytes);
        Assert.Equal(3u, f.Version);
        Assert.Equal("llama", f.Metadata["general.architecture"].Value);
        Assert.Equal((byte)7, f.Metadata["test.u8"].Value);
        Assert.Equal(new long[] { -1, 2, long.MaxValue }, (long[])f.Metadata["test.i64s"].Value);
        Assert.Equal(2.5, f.Metadata["test.f64"].Value);
        Assert.Equal(new[] { true, false }, (bool[])f.Metadata["test.bools"].Value);
        Assert.Equal(TinyGguf.Pieces, (string[])f.Metadata["tokenizer.ggml.tokens"].Value);
        Assert.Equal(1e-5f, f.Metadata["llama.attention.layer_norm_rms_epsilon"].Value);
        Assert.Equal(2 + TinyGguf.Layers * 9 + 1, f.Tensors.Count);
        var down = f.Tensor("blk.0.ffn_down.weight");
        Assert.Equal(new long[] { 256, 32 }, down.Dims);
        Assert.Equal(GgmlType.Q4_K, down.Type);
        Assert.Equal(32 * 144, down.ByteSize);
    }

    [Fact]
    public void EveryTensorIncludingTheLastIsAlignedAndPadded()
    {
        foreach (uint alignment in new uint[] { 32, 64 })
        {
            var bytes = TinyGguf.Build(alignment);
            using var f = GgufFile.FromBytes(bytes);
            Assert.Equal(alignment, f.Alignment);
            Assert.Equal(0, f.DataOffset % alignment);
            foreach (var t in f.Tensors) Assert.Equal(0, t.Offset % alignment);
            var last = f.Tensors.MaxBy(t => t.Offset)!;
            long paddedEnd = f.DataOffset + (last.Offset + last.ByteSize + alignment - 1) / alignment * alignment;
            Assert.Equal(paddedEnd, bytes.Length);
            Assert.NotEqual(0, last.ByteSize % alignment); // the padding is really there, not a coincidence of sizes
        }
    }

    [Fact]
    public void ImportedConfigAndShapesFollowTheMetadata()
    {
        using var f = GgufFile.FromBytes(TinyGguf.Build(), "tiny.gguf");
        var parts = GgufModelImporter.FromFile(f);
        using var weights = parts.Weights;
        var c = parts.Config;
        Assert.Equal((TinyGguf.Hidden, TinyGguf.Heads, TinyGguf.KvHeads, TinyGguf.HeadDim, TinyGguf.Ffn, TinyGguf.Layers, 17),
            (c.HiddenSize, c.NumHeads, c.NumKvHeads, c.HeadDim, c.IntermediateSize, c.NumLayers, c.VocabSize));
        Assert.False(c.TieWordEmbeddings);
        Assert.Equal(new long[] { 256, 32 }, weights.Shape("model.layers.0.mlp.up_proj.weight"));
        Assert.Equal("{{ messages }}", parts.Tokenizer!.ChatTemplate);
        using var model = ModelLoader.Build(c, weights, TorchSharp.torch.ScalarType.Float32);
        Assert.Equal(c.ParameterCount(), model.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void QkRowPermutationRoundTripsAndMatchesTheConverterFormula()
    {
        // rows = heads × 2 × half: HF row (h, j, i) goes to llama.cpp row (h, i, j).
        int heads = 2, half = 3, cols = 2, rows = heads * 2 * half;
        var w = TorchSharp.torch.arange(rows * cols, dtype: TorchSharp.torch.ScalarType.Float32).reshape(rows, cols);
        using var p = RopePermutation.ToInterleaved(w, heads);
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < half; i++)
                    Assert.Equal(w[h * 2 * half + j * half + i, 1].item<float>(), p[h * 2 * half + i * 2 + j, 1].item<float>());
        using var back = RopePermutation.ToRotateHalf(p, heads);
        Assert.True(back.eq(w).all().item<bool>());
    }

    [Fact]
    public void GqaImportUnpermutesWithTheKvHeadCount()
    {
        // Write a k_proj with known rows through the exporter's permutation, read it back through the importer.
        var config = new LlamaConfig { HiddenSize = 32, IntermediateSize = 32, NumLayers = 1, NumHeads = 4, NumKvHeads = 2, HeadDim = 8, VocabSize = 32 };
        var k = TorchSharp.torch.arange(16 * 32, dtype: TorchSharp.torch.ScalarType.Float32).reshape(16, 32);
        using var permuted = RopePermutation.ToInterleaved(k, config.NumKvHeads);
        Assert.False(permuted.eq(k).all().item<bool>());
        var llama = GgufArchitectures.Llama;
        using var back = RopePermutation.ToRotateHalf(permuted, (int)llama.InterleaveHeads("blk.0.attn_k.weight", config)!);
        Assert.True(back.eq(k).all().item<bool>());
        Assert.Equal(4, llama.InterleaveHeads("blk.0.attn_q.weight", config));
        Assert.Null(llama.InterleaveHeads("blk.0.attn_v.weight", config));
        // NEOX-RoPE architectures store HF's rotate-half order unchanged.
        Assert.Null(GgufArchitectures.Qwen2.InterleaveHeads("blk.0.attn_q.weight", config));
    }

    [Fact]
    public void DequantizedTensorsEqualTheCodecOutput()
    {
        var bytes = TinyGguf.Build();
        using var f = GgufFile.FromBytes(bytes);
        foreach (var t in f.Tensors)
        {
            var raw = f.RawBytes(t).ToArray();
            var expected = new float[t.ElementCount];
            GgmlCodec.Decode(t.Type, raw, expected);
            Assert.Equal(expected, f.DecodeToArray(t));
        }
    }

    [Fact]
    public void NamesMapBothWays()
    {
        string[] hf =
        {
            "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
            "model.layers.11.input_layernorm.weight", "model.layers.11.self_attn.q_proj.weight", "model.layers.11.self_attn.k_proj.weight",
            "model.layers.11.self_attn.v_proj.weight", "model.layers.11.self_attn.o_proj.weight", "model.layers.11.post_attention_layernorm.weight",
            "model.layers.11.mlp.gate_proj.weight", "model.layers.11.mlp.up_proj.weight", "model.layers.11.mlp.down_proj.weight",
        };
        string[] gguf =
        {
            "token_embd.weight", "output_norm.weight", "output.weight",
            "blk.11.attn_norm.weight", "blk.11.attn_q.weight", "blk.11.attn_k.weight",
            "blk.11.attn_v.weight", "blk.11.attn_output.weight", "blk.11.ffn_norm.weight",
            "blk.11.ffn_gate.weight", "blk.11.ffn_up.weight", "blk.11.ffn_down.weight",
        };
        var llama = GgufArchitectures.Llama;
        Assert.Equal(gguf, hf.Select(llama.ToGguf));
        Assert.Equal(hf, gguf.Select(llama.ToHf));
        Assert.Null(llama.ToGguf("model.layers.0.self_attn.rotary_emb.inv_freq"));
        Assert.Null(llama.ToHf("rope_freqs.weight"));
    }

    [Theory]
    [InlineData("not gguf", "not a GGUF file")]
    public void GarbageIsRejected(string content, string expected)
    {
        var bytes = System.Text.Encoding.ASCII.GetBytes(content.PadRight(40, 'x'));
        var e = Assert.Throws<EngineException>(() => GgufFile.FromBytes(bytes, "garbage.gguf"));
        Assert.Contains(expected, e.Message);
        Assert.Contains("garbage.gguf", e.Message);
    }

    [Fact]
    public void OpenFromDiskNamesTheFileInErrors()
    {
        using var tmp = new TempDir();
        string path = tmp.File("short.gguf");
        File.WriteAllBytes(path, TinyGguf.Build().AsSpan(0, 1000).ToArray());
        var e = Assert.Throws<EngineException>(() => GgufFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Throws<EngineException>(() => GgufFile.Open(tmp.File("absent.gguf")));
    }
}
