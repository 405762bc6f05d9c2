using Engine.Gguf;
using Engine.Models;

namespace Engine.Tests.Gguf;

/// <summary>
/// The per-tensor type choice against the tensor-type counts llama.cpp's quantizer reports for LLaMA-2 7B
/// ("type f32: 65 tensors, type q4_K: 193, type q6_K: 33" for Q4_K_M; "f32: 65, q4_0: 225, q6_K: 1" for Q4_0).
/// </summary>
public class TensorTypePlanTests
{
    static readonly LlamaConfig Llama2_7B = new()
    {
        HiddenSize = 4096, IntermediateSize = 11008, NumLayers = 32, NumHeads = 32, NumKvHeads = 32, HeadDim = 128, VocabSize = 32000,
    };

    static Dictionary<GgmlType, int> Counts(LlamaConfig c, GgufExportType type) =>
        HfTensorLayout.Tensors(c)
            .Select(t => TensorTypePlan.Choose(type, GgufArchitectures.Llama.ToGguf(t.Name)!, t.Shape.Reverse().ToArray(), c.NumLayers, !c.TieWordEmbeddings))
            .GroupBy(t => t.Type).ToDictionary(g => g.Key, g => g.Count());

    [Fact]
    public void Llama2Q4KMCountsMatchLlamaCpp()
    {
        var counts = Counts(Llama2_7B, GgufExportType.Q4_K_M);
        Assert.Equal(new Dictionary<GgmlType, int> { [GgmlType.F32] = 65, [GgmlType.Q4_K] = 193, [GgmlType.Q6_K] = 33 }, counts);
    }

    [Fact]
    public void Llama2Q4_0CountsMatchLlamaCpp()
    {
        var counts = Counts(Llama2_7B, GgufExportType.Q4_0);
        Assert.Equal(new Dictionary<GgmlType, int> { [GgmlType.F32] = 65, [GgmlType.Q4_0] = 225, [GgmlType.Q6_K] = 1 }, counts);
    }

    [Fact]
    public void FloatTypesKeepNormsInF32AndNeverFallBack()
    {
        Assert.Equal(new Dictionary<GgmlType, int> { [GgmlType.F32] = 291 }, Counts(Llama2_7B, GgufExportType.F32));
        Assert.Equal(new Dictionary<GgmlType, int> { [GgmlType.F32] = 65, [GgmlType.F16] = 226 }, Counts(Llama2_7B, GgufExportType.F16));
        Assert.Equal(new Dictionary<GgmlType, int> { [GgmlType.F32] = 65, [GgmlType.BF16] = 226 }, Counts(Llama2_7B, GgufExportType.BF16));
        var odd = TensorTypePlan.Choose(GgufExportType.F16, "blk.0.ffn_down.weight", new long[] { 172, 64 }, 5, true);
        Assert.Equal(GgmlType.F16, odd.Type);
        Assert.False(odd.IsFallback);
    }

    [Fact]
    public void TiedEmbeddingsTakeTheOutputTypeAndQ8_0KeepsItsOutput()
    {
        var tied = Llama2_7B with { TieWordEmbeddings = true };
        var embd = TensorTypePlan.Choose(GgufExportType.Q4_K_M, "token_embd.weight", new long[] { 4096, 32000 }, 32, hasOutputTensor: false);
        Assert.Equal(GgmlType.Q6_K, embd.Type);
        Assert.Equal(GgmlType.Q8_0, TensorTypePlan.Choose(GgufExportType.Q8_0, "output.weight", new long[] { 4096, 32000 }, 32, true).Type);
        Assert.Equal(GgmlType.Q4_K, TensorTypePlan.Choose(GgufExportType.Q4_K_M, "token_embd.weight", new long[] { 4096, 32000 }, 32, true).Type);
        // Tied: no output tensor; token_embd takes its Q6_K, beside 16 attn_v and 16 ffn_down.
        Assert.Equal(new Dictionary<GgmlType, int> { [GgmlType.F32] = 65, [GgmlType.Q4_K] = 192, [GgmlType.Q6_K] = 33 }, Counts(tied, GgufExportType.Q4_K_M));
    }

    [Theory]
    [InlineData(GgufExportType.Q4_K_M, 64, GgmlType.Q5_0)]   // Q4_K → Q5_0
    [InlineData(GgufExportType.Q6_K, 64, GgmlType.Q8_0)]     // Q6_K → Q8_0
    [InlineData(GgufExportType.Q4_K_M, 172, GgmlType.F16)]   // Q4_K → Q5_0 → does not fit either → F16
    [InlineData(GgufExportType.Q8_0, 172, GgmlType.F16)]     // a 32-block type that does not fit → F16
    [InlineData(GgufExportType.Q4_0, 48, GgmlType.F16)]
    public void RowsThatDoNotFitFallBackAsLlamaCppDoes(GgufExportType type, long rowLength, GgmlType expected)
    {
        var c = TensorTypePlan.Choose(type, "blk.1.ffn_up.weight", new long[] { rowLength, 128 }, 4, true);
        Assert.Equal(expected, c.Type);
        Assert.True(c.IsFallback);
        Assert.Contains($"row length {rowLength}", c.Note);
    }

    [Fact]
    public void UseMoreBitsMatchesLlamaCppsLayerSelection()
    {
        // For 32 layers: the first 4, the last 4, and every third layer from 6 to 27.
        var chosen = Enumerable.Range(0, 32).Where(l => TensorTypePlan.UseMoreBits(l, 32)).ToArray();
        Assert.Equal(new[] { 0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31 }, chosen);
    }
}
