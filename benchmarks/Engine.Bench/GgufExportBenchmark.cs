using System.Diagnostics;
using Engine.Gguf;
using Engine.Gguf.Quantization;
using Engine.Models;
using Engine.Tokenization;
using static TorchSharp.torch;

namespace Engine.Bench;

/// <summary>Export throughput measured against plain file copies of the same size, in the same run.</summary>
public sealed record ExportBenchmarkResult
{
    public required long SourceBytes { get; init; }
    public required int Cores { get; init; }
    public required double StreamCopyMBps { get; init; }
    public required double FileCopyMBps { get; init; }
    public required double ExportF16MBps { get; init; }
    public required double ExportQ8_0MBps { get; init; }
    public required double QuantizeQ4KOneThreadMBps { get; init; }
    public required double QuantizeQ4KAllThreadsMBps { get; init; }
    public double F16VsCopy => ExportF16MBps / StreamCopyMBps;
    public double Q8_0VsCopy => ExportQ8_0MBps / StreamCopyMBps;
    public double QuantizeSpeedup => QuantizeQ4KAllThreadsMBps / QuantizeQ4KOneThreadMBps;
}

/// <summary>
/// Times `export` at F16 and Q8_0 (F32 source bytes per second, validation off) and a copy of the source
/// safetensors file (user-space stream copy, the baseline; File.Copy, which copies inside the kernel, too), best of
/// N runs each, every output forced to disk as the exporter does; plus Q4_K quantization on one core and on all cores.
/// </summary>
public static class GgufExportBenchmark
{
    public static ExportBenchmarkResult Run(string? modelDirectory, string workDirectory, int repeats, TextWriter? log = null)
    {
        Directory.CreateDirectory(workDirectory);
        string model = modelDirectory ?? CreateSyntheticModel(Path.Combine(workDirectory, "model"), log);
        string weights = Path.Combine(model, "model.safetensors");
        if (!File.Exists(weights)) throw new EngineException($"{model}: the benchmark needs a single model.safetensors file");
        long sourceBytes;
        using (var parts = ModelLoader.OpenParts(model).Weights)
            sourceBytes = parts.Names.Sum(n => parts.Shape(n).Aggregate(4L, (a, d) => a * d));
        long fileBytes = new FileInfo(weights).Length;

        double Best(string what, Action run)
        {
            double best = double.MaxValue;
            for (int i = 0; i < repeats; i++)
            {
                var sw = Stopwatch.StartNew();
                run();
                best = Math.Min(best, sw.Elapsed.TotalSeconds);
                log?.WriteLine($"  {what} run {i + 1}: {sw.Elapsed.TotalSeconds:F3} s");
            }
            return best;
        }
        string copy = Path.Combine(workDirectory, "copy.bin");
        void Remove(string p) { if (File.Exists(p)) File.Delete(p); }
        StreamCopy(weights, copy); // warms the page cache for every run that follows
        Remove(copy);
        double streamCopy = Best("stream copy", () => { StreamCopy(weights, copy); Remove(copy); });
        double fileCopy = Best("File.Copy", () => { File.Copy(weights, copy); Sync(copy); Remove(copy); });
        string output = Path.Combine(workDirectory, "out.gguf");
        double Export(GgufExportType type) => Best($"export {GgufExportTypes.Name(type)}", () =>
        {
            GgufExporter.Export(model, output, new GgufExportOptions { Type = type, Force = true });
            Remove(output);
        });
        double f16 = Export(GgufExportType.F16);
        double q8 = Export(GgufExportType.Q8_0);

        var values = new float[1 << 22];
        var rng = new Random(1);
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() - 0.5);
        var encoded = new byte[GgmlTypes.RowBytes(GgmlType.Q4_K, 4096) * (values.Length / 4096)];
        double Quantize(int threads) => Best($"quantize q4_K on {(threads < 0 ? "all cores" : $"{threads} core")}", () =>
        {
            int previous = GgmlCodec.MaxDegreeOfParallelism;
            GgmlCodec.MaxDegreeOfParallelism = threads;
            try { unsafe { fixed (float* s = values) fixed (byte* d = encoded) GgmlCodec.EncodeRows(GgmlType.Q4_K, s, d, values.Length / 4096, 4096); } }
            finally { GgmlCodec.MaxDegreeOfParallelism = previous; }
        });
        double one = Quantize(1), all = Quantize(-1);
        double mb = 1e6;
        return new ExportBenchmarkResult
        {
            SourceBytes = sourceBytes,
            Cores = Environment.ProcessorCount,
            StreamCopyMBps = fileBytes / mb / streamCopy,
            FileCopyMBps = fileBytes / mb / fileCopy,
            ExportF16MBps = sourceBytes / mb / f16,
            ExportQ8_0MBps = sourceBytes / mb / q8,
            QuantizeQ4KOneThreadMBps = values.Length * 4.0 / mb / one,
            QuantizeQ4KAllThreadsMBps = values.Length * 4.0 / mb / all,
        };
    }

    /// <summary>Forces a file to disk, as the exporter does before its rename, so that copies and exports pay the same.</summary>
    static void Sync(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        f.Flush(true);
    }

    static void StreamCopy(string from, string to)
    {
        using var input = new FileStream(from, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        using var output = new FileStream(to, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        input.CopyTo(output, 1 << 22);
        output.Flush(true);
    }

    /// <summary>A random Llama of about 270 MB (F32) with a synthetic SentencePiece vocabulary, in HF layout.</summary>
    public static string CreateSyntheticModel(string directory, TextWriter? log = null)
    {
        if (Directory.Exists(directory)) return directory;
        log?.WriteLine($"creating a synthetic model in {directory}");
        var config = new LlamaConfig
        {
            HiddenSize = 768, IntermediateSize = 2048, NumLayers = 6, NumHeads = 12, NumKvHeads = 4, HeadDim = 64,
            VocabSize = 16000, MaxPositionEmbeddings = 512, RmsNormEps = 1e-5,
        };
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        while (pieces.Count < config.VocabSize) pieces.Add($"\u2581w{pieces.Count}");
        var types = pieces.Select((p, i) => i == 0 ? TokenType.Unknown : i < 3 ? TokenType.Control : i < 259 ? TokenType.Byte : TokenType.Normal).ToList();
        var tokenizer = SpmTokenizer.FromPieces(pieces, pieces.Select((_, i) => -(float)i).ToList(), types,
            new TokenizerSettings { BosId = 1, EosId = 2, UnkId = 0 }, "synthetic");
        using var model = new LlamaForCausalLM(config);
        model.InitializeWeights(seed: 1);
        ModelLoader.Save(model, tokenizer, directory, ScalarType.Float32);
        return directory;
    }
}
