using System.Runtime.InteropServices;
using Engine.Gguf;
using Engine.Gguf.Quantization;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tokenization;
using static TorchSharp.torch;

namespace Engine.Tests.Gguf;

/// <summary>
/// The parallel, chunked exporter against the plain path it replaced: every tensor read whole through the weight
/// source, converted to float32 and permuted by PyTorch, encoded row by row by the scalar codecs, and written in order
/// by <see cref="GgufWriter.Write"/>. The files must be equal byte for byte, for every type, from F32, BF16 and F16
/// safetensors (read in place from the mapping) and from a GGUF file (read through the weight source), with tensors
/// cut into one-row and several-row chunks. The weights hold awkward values (F16 ties, subnormals, overflow, NaN
/// payloads, infinities) so every conversion path is exercised.
/// </summary>
public class ExportPipelineTests
{
    static readonly GgufExportType[] AllTypes = Enum.GetValues<GgufExportType>();

    static LlamaConfig Config(int vocab) => new()
    {
        HiddenSize = 64, IntermediateSize = 256, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 16,
        VocabSize = vocab, MaxPositionEmbeddings = 128, RmsNormEps = 1e-5,
    };

    /// <summary>A synthetic SentencePiece vocabulary: specials, the 256 byte tokens, then words.</summary>
    internal static SpmTokenizer Tokenizer(int vocab)
    {
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        while (pieces.Count < vocab) pieces.Add($"\u2581w{pieces.Count}");
        var types = pieces.Select((p, i) => i == 0 ? TokenType.Unknown : i < 3 ? TokenType.Control : i < 259 ? TokenType.Byte : TokenType.Normal).ToList();
        return SpmTokenizer.FromPieces(pieces, pieces.Select((_, i) => -(float)i).ToList(), types,
            new TokenizerSettings { BosId = 1, EosId = 2, UnkId = 0 }, "synthetic");
    }

    static float Bits(uint b) => BitConverter.UInt32BitsToSingle(b);

    /// <summary>A random model whose every tensor also holds special values, saved in <paramref name="dtype"/>.</summary>
    static string Model(string dir, ScalarType dtype)
    {
        const int vocab = 300;
        var specials = new[]
        {
            1 + MathF.Pow(2, -11), 1 + 3 * MathF.Pow(2, -11), 1 + MathF.Pow(2, -8), 65504f, 65520f, 70000f, -1e5f,
            1e-7f, 3e-8f, 2.9802322e-8f, 1e-40f, -1e-42f, 0f, -0f, float.PositiveInfinity, float.NegativeInfinity,
            Bits(0x7fc00001), Bits(0x7f802000), Bits(0xffa00000),
        };
        using var model = new LlamaForCausalLM(Config(vocab));
        model.InitializeWeights(seed: 11);
        var rng = new Random(4);
        using (no_grad())
            foreach (var (_, p) in model.named_parameters())
            {
                var values = p.to(ScalarType.Float32).data<float>().ToArray();
                for (int i = 0; i < values.Length; i += 1 + rng.Next(40)) values[i] = specials[rng.Next(specials.Length)];
                using var replaced = tensor(values).reshape(p.shape);
                p.copy_(replaced);
            }
        ModelLoader.Save(model, Tokenizer(vocab), dir, dtype);
        return dir;
    }

    /// <summary>The plain, serial export path (see the class summary).</summary>
    static byte[] ReferenceExport(string source, GgufExportType type)
    {
        var parts = ModelLoader.OpenParts(source);
        using var weights = parts.Weights;
        var config = parts.Config;
        var plan = HfTensorLayout.Tensors(config).Select(t => t.Name).Select(hf =>
        {
            var dims = weights.Shape(hf).Reverse().ToArray();
            return (Hf: hf, Choice: TensorTypePlan.Choose(type, GgufArchitectures.Llama.ToGguf(hf)!, dims, config.NumLayers, hasOutputTensor: !config.TieWordEmbeddings));
        }).ToList();
        var writer = new GgufWriter();
        foreach (var kv in GgufModelMetadata.Build(config, "m", type, plan.Any(p => GgmlTypes.IsQuantized(p.Choice.Type)), config.VocabSize)) writer.Add(kv.Key, kv.Value);
        foreach (var kv in GgufTokenizerMetadata.Build(parts.Tokenizer!, config.VocabSize, source)) writer.Add(kv.Key, kv.Value);
        foreach (var (hf, c) in plan)
            writer.AddTensor(c.Name, c.Dims, c.Type, stream =>
            {
                using var scope = NewDisposeScope();
                var values = weights.Read(hf).to(ScalarType.Float32).contiguous();
                if (GgufArchitectures.Llama.InterleaveHeads(c.Name, config) is int heads) values = RopePermutation.ToInterleaved(values, heads);
                var floats = values.data<float>().ToArray();
                int rowLength = (int)c.Dims[0], rowBytes = (int)GgmlTypes.RowBytes(c.Type, rowLength);
                var row = new byte[rowBytes];
                for (int r = 0; r < floats.Length / rowLength; r++)
                {
                    var x = floats.AsSpan(r * rowLength, rowLength);
                    switch (c.Type)
                    {
                        case GgmlType.F32: MemoryMarshal.AsBytes(x).CopyTo(row); break;
                        case GgmlType.F16: FloatCodecs.ToHalf(x, MemoryMarshal.Cast<byte, ushort>(row.AsSpan()), SimdWidth.Scalar); break;
                        case GgmlType.BF16: FloatCodecs.ToBFloat16(x, MemoryMarshal.Cast<byte, ushort>(row.AsSpan()), SimdWidth.Scalar); break;
                        case GgmlType.Q8_0: Q8_0Codec.Quantize(x, row, SimdWidth.Scalar); break;
                        default: GgmlCodec.Encode(c.Type, x, row); break;
                    }
                    stream.Write(row);
                }
            });
        var output = new MemoryStream();
        writer.Write(output);
        return output.ToArray();
    }

    static void AssertExportsEqual(TempDir tmp, string source, string label)
    {
        foreach (var type in AllTypes)
        {
            var expected = ReferenceExport(source, type);
            // Default chunks (whole tiny tensors), one row per chunk, and several rows per chunk.
            foreach (long chunk in new long[] { GgufTensorPipeline.DefaultChunkElements, 1, 300 })
            {
                string output = tmp.File($"{label}-{GgufExportTypes.Name(type)}-{chunk}.gguf");
                GgufExporter.Export(source, output, new GgufExportOptions { Type = type, Name = "m", ChunkElements = chunk });
                var actual = File.ReadAllBytes(output);
                Assert.True(expected.Length == actual.Length, $"{label} {GgufExportTypes.Name(type)} chunk {chunk}: {actual.Length} bytes, expected {expected.Length}");
                int diff = expected.AsSpan().CommonPrefixLength(actual);
                Assert.True(diff == expected.Length, $"{label} {GgufExportTypes.Name(type)} chunk {chunk}: first differing byte at {diff}");
                File.Delete(output);
            }
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void SafetensorsExportsEqualThePlainPathForEveryType(ScalarType dtype)
    {
        using var tmp = new TempDir();
        string model = Model(tmp.File("model"), dtype);
        AssertExportsEqual(tmp, model, dtype.ToString());
    }

    [Fact]
    public void GgufSourceExportsEqualThePlainPathForEveryType()
    {
        using var tmp = new TempDir();
        string model = Model(tmp.File("model"), ScalarType.Float32);
        string gguf = tmp.File("source.gguf");
        GgufExporter.Export(model, gguf, new GgufExportOptions { Type = GgufExportType.F16, Name = "m" });
        AssertExportsEqual(tmp, gguf, "gguf");
    }

    [Fact]
    public void TheExportReportsWhereItsTimeWent()
    {
        using var tmp = new TempDir();
        string model = Model(tmp.File("model"), ScalarType.BFloat16);
        var result = GgufExporter.Export(model, tmp.File("out.gguf"), new GgufExportOptions { Type = GgufExportType.Q8_0, ChunkElements = 1000 });
        var t = result.Timings;
        Assert.InRange(t.Workers, 1, Environment.ProcessorCount);
        Assert.True(t.Encode > TimeSpan.Zero && t.Write > TimeSpan.Zero && t.Read > TimeSpan.Zero, $"{t}");
        Assert.True(t.Read + t.Encode + t.Write + t.Flush <= result.WriteTime * t.Workers, $"{t} vs {result.WriteTime}");
    }

    [Fact]
    public void RowPermutationEqualsThePyTorchPermutation()
    {
        foreach (var (rows, heads) in new[] { (16, 4), (32, 2), (12, 6), (8, 1) })
        {
            using var w = arange(rows * 3, ScalarType.Float32).reshape(rows, 3);
            using var permuted = RopePermutation.ToInterleaved(w, heads);
            var expected = permuted.data<float>().ToArray();
            for (int r = 0; r < rows; r++)
            {
                long source = RopePermutation.InterleavedSourceRow(r, rows, heads);
                Assert.Equal(source * 3, expected[r * 3]);
            }
        }
    }
}
