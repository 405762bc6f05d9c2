using System.Diagnostics;
using Engine.Gguf.Quantization;
using Engine.Models;
using Engine.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Engine.Gguf;

public sealed record GgufExportOptions
{
    public GgufExportType Type { get; init; } = GgufExportType.F16;
    /// <summary>general.name; defaults to the model folder or file name.</summary>
    public string? Name { get; init; }
    /// <summary>Replace an existing output file.</summary>
    public bool Force { get; init; }
    /// <summary>Called with the finished temporary file before it is renamed into place; throwing keeps it from appearing.</summary>
    public Action<string>? BeforeRename { get; init; }
    /// <summary>Elements per unit of work (tests make it small to cut tensors into many chunks).</summary>
    internal long ChunkElements { get; init; } = GgufTensorPipeline.DefaultChunkElements;
}

public sealed record GgufExportResult(string OutputPath, GgufExportType Type, IReadOnlyList<TensorTypeChoice> Tensors,
    long FileBytes, long SourceBytes, TimeSpan WriteTime, IReadOnlyList<string> Notices)
{
    public IEnumerable<TensorTypeChoice> Fallbacks => Tensors.Where(t => t.IsFallback);
    /// <summary>Where the writing time went (for `bench export`).</summary>
    public GgufExportTimings Timings { get; init; } = GgufExportTimings.None;
}

/// <summary>
/// Writes a model as a llama.cpp GGUF file of its family's architecture (<see cref="GgufArchitectures"/>): metadata,
/// the tokenizer, tensors renamed and changed as llama.cpp's converter changes them (q/k rows interleaved for the
/// llama architecture's RoPE, Gemma's norms as 1 + w, llama3 RoPE scaling as rope_freqs), dims innermost first, each
/// tensor converted or quantized
/// (llama.cpp's type mix and fallbacks) by <see cref="GgufTensorPipeline"/>: chunks of rows read in place from the
/// mapped source, encoded and written at their offsets, one worker per core. The file goes to a temporary sibling
/// and is renamed into place only when complete.
/// </summary>
public static class GgufExporter
{
    public static GgufExportResult Export(string modelPath, string outputPath, GgufExportOptions options)
    {
        string target = CheckOutputPath(outputPath, options.Force);
        var parts = ModelLoader.OpenParts(modelPath);
        using var weights = parts.Weights;
        string name = options.Name ?? DefaultName(modelPath);
        return Export(parts, modelPath, target, options with { Name = name });
    }

    /// <summary>Rejects an output path that exists (unless forced), is a folder, or lies in a missing folder.</summary>
    public static string CheckOutputPath(string outputPath, bool force)
    {
        string full = Path.GetFullPath(outputPath);
        if (Directory.Exists(full)) throw new EngineException($"{outputPath}: is a folder (expected a .gguf file path)");
        if (File.Exists(full) && !force) throw new EngineException($"{outputPath}: already exists (use --force to replace it)");
        string? parent = Path.GetDirectoryName(full);
        if (parent is null || !Directory.Exists(parent)) throw new EngineException($"{outputPath}: folder {parent} does not exist");
        return full;
    }

    static string DefaultName(string modelPath)
    {
        string full = Path.GetFullPath(modelPath.TrimEnd('/'));
        string name = File.Exists(full) ? Path.GetFileNameWithoutExtension(full) : Path.GetFileName(full);
        // HF folders are often named .../model-name/hf; the parent says more.
        if (name is "hf" or "model" or "checkpoint" && Path.GetDirectoryName(full) is string parent) name = Path.GetFileName(parent);
        return name;
    }

    public static GgufExportResult Export(ModelParts parts, string source, string target, GgufExportOptions options)
    {
        var clock = Stopwatch.StartNew();
        var config = parts.Config;
        var weights = parts.Weights;
        var tokenizer = parts.Tokenizer ?? throw new EngineException($"{source}: no tokenizer found (GGUF files carry the vocabulary; expected tokenizer.model or tokenizer.json)");
        var arch = GgufArchitectures.For(config.Family);
        var notices = GgufArchitectureMetadata.Differences(config, arch).ToList();
        if (GgufTokenizerMetadata.RemovesExtraWhitespace(tokenizer)) notices.Add(GgufTokenizerMetadata.WhitespaceNotice);
        if (tokenizer.VocabSize > config.VocabSize && GgufTokenizerMetadata.DroppedAddedTokens(tokenizer, config.VocabSize) is { Count: > 0 } dropped)
            notices.Add($"notice: the tokenizer's added token(s) {string.Join(", ", dropped.Take(4))} lie past the model's {config.VocabSize} embedding rows and are left out of the file");
        if (GgufTokenizerMetadata.Notice(tokenizer) is { } tokenizerNotice) notices.Add(tokenizerNotice);
        if (parts.StorageDtype.Split('/').Any(t => t.StartsWith('Q')))
            notices.Add($"notice: the source is already quantized ({parts.StorageDtype}); its dequantized weights are converted again, which adds the new type's error to the old one");

        var tensors = ExportTensors(config, arch, weights);
        var plan = new List<(ExportTensor Tensor, TensorTypeChoice Choice)>();
        long sourceBytes = 0;
        foreach (var t in tensors)
        {
            var dims = t.TorchShape.Reverse().ToArray();
            plan.Add((t, TensorTypePlan.Choose(options.Type, t.GgufName, dims, config.NumLayers, hasOutputTensor: !config.TieWordEmbeddings)));
            sourceBytes += t.TorchShape.Aggregate(4L, (a, d) => a * d);
        }
        bool anyQuantized = plan.Any(p => GgmlTypes.IsQuantized(p.Choice.Type));

        var writer = new GgufWriter();
        foreach (var kv in GgufModelMetadata.Build(config, options.Name ?? DefaultName(source), options.Type, anyQuantized, config.VocabSize)) writer.Add(kv.Key, kv.Value);
        foreach (var kv in GgufTokenizerMetadata.Build(tokenizer, config.VocabSize, source)) writer.Add(kv.Key, kv.Value);
        foreach (var (_, c) in plan) writer.AddTensor(c.Name, c.Dims, c.Type);
        var layout = writer.Layout();

        var jobs = new List<TensorJob>();
        GgufExportTimings timings;
        TimeSpan writeTime = TimeSpan.Zero;
        string tmp = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileNameWithoutExtension(target)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}.gguf");
        try
        {
            for (int i = 0; i < plan.Count; i++)
            {
                var (t, c) = plan[i];
                long rowLength = c.Dims[0];
                long rows = c.Dims.Skip(1).Aggregate(1L, (a, d) => a * d);
                jobs.Add(new TensorJob(c.Name, c.Type, rows, rowLength, layout.TensorOffsets[i], t.Rows(rowLength)));
            }
            using (var file = File.OpenHandle(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                RandomAccess.SetLength(file, layout.FileSize);
                RandomAccess.Write(file, layout.Header, 0);
                timings = GgufTensorPipeline.Run(file, jobs, Workers, options.ChunkElements);
                var flushStart = clock.Elapsed;
                RandomAccess.FlushToDisk(file);
                timings = timings with { Flush = clock.Elapsed - flushStart };
            }
            writeTime = clock.Elapsed;
            options.BeforeRename?.Invoke(tmp);
            File.Move(tmp, target, overwrite: options.Force);
        }
        catch (IOException e) when (File.Exists(target) && !options.Force && File.Exists(tmp))
        {
            throw new EngineException($"{target}: already exists (use --force to replace it)", e);
        }
        finally
        {
            foreach (var job in jobs) job.Source.Dispose();
            if (File.Exists(tmp)) File.Delete(tmp);
        }
        return new GgufExportResult(target, options.Type, plan.Select(p => p.Choice).ToList(), new FileInfo(target).Length, sourceBytes, writeTime, notices)
        {
            Timings = timings,
        };
    }

    /// <summary>One tensor of the file: its name, PyTorch shape, and the source of its float32 rows.</summary>
    sealed record ExportTensor(string GgufName, long[] TorchShape, Func<long, TensorRows> Rows);

    /// <summary>
    /// The file's tensors as llama.cpp's converter writes them: the rope_freqs divisors first for llama3 scaling, then
    /// every checkpoint tensor renamed, with q/k rows interleaved where the architecture rotates adjacent pairs and norm
    /// weights shifted where it stores them with their unit offset.
    /// </summary>
    static List<ExportTensor> ExportTensors(LlamaConfig config, GgufArchitecture arch, IWeightSource weights)
    {
        arch.CheckCovers(config, weights.Description);
        var layout = HfTensorLayout.Tensors(config).ToList();
        var available = new HashSet<string>(weights.Names);
        var missing = layout.Where(t => !available.Contains(t.Name)).Select(t => t.Name).ToList();
        if (missing.Count > 0) throw new EngineException($"{weights.Description}: missing tensors: {string.Join(", ", missing.Take(8))}");
        var list = new List<ExportTensor>();
        if (config.RopeScaling == RopeScalingKind.Llama3)
        {
            if (!arch.InterleavesRope) throw new EngineException($"{weights.Description}: llama3 RoPE scaling has no form in llama.cpp's {arch.Name} architecture");
            list.Add(new ExportTensor(GgufArchitecture.RopeFrequencies, new long[] { config.HeadDim / 2 }, _ => new MaterializedRows(() =>
            {
                using var inv = RotaryTables.InverseFrequencies(new RopeSpec(config.RopeTheta), config.HeadDim, 0);
                return RotaryTables.Llama3FrequencyFactors(config.GlobalRope, inv);
            })));
        }
        foreach (var (hf, _) in layout)
        {
            string gguf = arch.ToGguf(hf)!;
            int? heads = arch.InterleaveHeads(gguf, config);
            bool shifted = arch.NormShift != 0 && GgufArchitecture.IsNorm(hf);
            list.Add(new ExportTensor(gguf, weights.Shape(hf), rowLength => shifted
                ? new MaterializedRows(() =>
                {
                    using var values = MaterializedRows.ReadFloat32(weights, hf, heads);
                    return values + arch.NormShift;
                })
                : TensorRows.For(weights, hf, heads, rowLength)));
        }
        return list;
    }

    /// <summary>One worker per core, or fewer when <see cref="GgmlCodec.MaxDegreeOfParallelism"/> says so.</summary>
    static int Workers => GgmlCodec.MaxDegreeOfParallelism > 0 ? Math.Min(GgmlCodec.MaxDegreeOfParallelism, Environment.ProcessorCount) : Environment.ProcessorCount;
}
