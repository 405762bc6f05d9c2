using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Engine.Gguf;
using Engine.Gguf.Quantization;
using Engine.Models;
using Engine.Tokenization;
using static TorchSharp.torch;

namespace Engine.Bench;

/// <summary>
/// One measured figure: its wall time on each repeat, the bytes it moved per run, and the process's CPU time (user +
/// system, all threads) per run, which a busy machine distorts less than wall time.
/// </summary>
public sealed record RepeatedTiming(string Name, long Bytes, IReadOnlyList<double> Seconds, IReadOnlyList<double> CpuSeconds)
{
    public double MinSeconds => Seconds.Min();
    public double MaxSeconds => Seconds.Max();
    public double MedianSeconds => Median(Seconds);
    public double MedianMBps => Bytes / 1e6 / MedianSeconds;
    public double MinMBps => Bytes / 1e6 / MaxSeconds;
    public double MaxMBps => Bytes / 1e6 / MinSeconds;
    /// <summary>Slowest over fastest run.</summary>
    public double Spread => MaxSeconds / MinSeconds;

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        int n = sorted.Length;
        return n == 0 ? double.NaN : n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}

/// <summary>Median seconds per export stage, summed over the export's workers (see <see cref="GgufExportTimings"/>).</summary>
public sealed record ExportStageMedians(double Read, double Encode, double Write, double Flush, int Workers);

/// <summary>Export throughput against a plain file copy of the source, measured in the same rounds.</summary>
public sealed record ExportBenchmarkResult
{
    /// <summary>A spread (slowest / fastest) above this makes the figures suspect: the machine was busy.</summary>
    public const double SpreadWarning = Spread.Warning;
    public const double F16Goal = 0.8, Q8_0Goal = 0.6;

    public required long SourceBytes { get; init; }
    public required int Repeats { get; init; }
    public required BenchmarkMachine Machine { get; init; }
    public required RepeatedTiming Copy { get; init; }
    public required IReadOnlyDictionary<GgufExportType, RepeatedTiming> Exports { get; init; }
    public required IReadOnlyDictionary<GgufExportType, ExportStageMedians> Stages { get; init; }
    public required RepeatedTiming QuantizeQ4KOneCore { get; init; }
    public required RepeatedTiming QuantizeQ4KAllCores { get; init; }

    /// <summary>Median export throughput (F32 source bytes/s) over median copy throughput (file bytes/s).</summary>
    public double VsCopy(GgufExportType type) => Exports[type].MedianMBps / Copy.MedianMBps;
    public double QuantizeSpeedup => QuantizeQ4KAllCores.MedianMBps / QuantizeQ4KOneCore.MedianMBps;

    public IEnumerable<RepeatedTiming> All => new[] { Copy }.Concat(Exports.Values).Append(QuantizeQ4KOneCore).Append(QuantizeQ4KAllCores);

    public IEnumerable<string> Warnings => All.Where(t => t.Spread > SpreadWarning)
        .Select(t => $"warning: {t.Name} varied {t.Spread:F2}× between runs (> {SpreadWarning}×): the machine was busy (load {Machine.LoadAverageBefore} → {Machine.LoadAverageAfter}); compare ratios, not absolute figures");

    public string ToJson()
    {
        static object Figure(RepeatedTiming t) => new Dictionary<string, object>
        {
            ["mb_s"] = new Dictionary<string, double> { ["min"] = Math.Round(t.MinMBps, 1), ["median"] = Math.Round(t.MedianMBps, 1), ["max"] = Math.Round(t.MaxMBps, 1) },
            ["seconds"] = t.Seconds.Select(s => Math.Round(s, 4)).ToArray(),
            ["cpu_seconds_median"] = Math.Round(RepeatedTiming.Median(t.CpuSeconds), 4),
            ["spread"] = Math.Round(t.Spread, 3),
        };
        var json = new Dictionary<string, object>
        {
            ["source_bytes"] = SourceBytes,
            ["repeats"] = Repeats,
            ["machine"] = new Dictionary<string, object>
            {
                ["cpu"] = Machine.Cpu, ["cores"] = Machine.Cores, ["isa"] = Machine.VectorIsa, ["export_threads"] = Machine.Threads,
                ["available_memory_gib"] = Machine.AvailableMemoryGiB, ["load_before"] = Machine.LoadAverageBefore, ["load_after"] = Machine.LoadAverageAfter,
            },
            ["copy"] = Figure(Copy),
        };
        foreach (var (type, timing) in Exports)
        {
            string name = GgufExportTypes.Name(type);
            var stages = Stages[type];
            json[$"export_{name}"] = Figure(timing);
            json[$"{name}_vs_copy"] = Math.Round(VsCopy(type), 3);
            json[$"stages_{name}_seconds"] = new Dictionary<string, object>
            {
                ["read"] = Math.Round(stages.Read, 4), ["encode"] = Math.Round(stages.Encode, 4),
                ["write"] = Math.Round(stages.Write, 4), ["flush"] = Math.Round(stages.Flush, 4),
            };
        }
        json["quantize_q4_k_1_core"] = Figure(QuantizeQ4KOneCore);
        json["quantize_q4_k_all_cores"] = Figure(QuantizeQ4KAllCores);
        json["quantize_speedup"] = Math.Round(QuantizeSpeedup, 2);
        json["goal_f16_vs_copy"] = F16Goal;
        json["goal_q8_0_vs_copy"] = Q8_0Goal;
        json["goals_met"] = VsCopy(GgufExportType.F16) >= F16Goal && VsCopy(GgufExportType.Q8_0) >= Q8_0Goal;
        json["warnings"] = Warnings.ToArray();
        return JsonSerializer.Serialize(json);
    }

    public string Describe()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(string.Format(ci, "source: {0:N1} MB of F32 weights; {1} repeats; medians [min – max]", SourceBytes / 1e6, Repeats));
        sb.AppendLine($"machine: {Machine.Cpu}, {Machine.Cores} cores, {Machine.VectorIsa}, {Machine.Threads} export threads, "
            + string.Format(ci, "{0:F1} GiB available, load {1} → {2}", Machine.AvailableMemoryGiB, Machine.LoadAverageBefore, Machine.LoadAverageAfter));
        string Line(RepeatedTiming t) => string.Format(ci, "{0,-16} {1,8:N1} MB/s [{2:N1} – {3:N1}], CPU {4:F3} s", t.Name + ":", t.MedianMBps, t.MinMBps, t.MaxMBps, RepeatedTiming.Median(t.CpuSeconds));
        sb.AppendLine(Line(Copy));
        foreach (var (type, timing) in Exports)
        {
            var s = Stages[type];
            double goal = type == GgufExportType.F16 ? F16Goal : type == GgufExportType.Q8_0 ? Q8_0Goal : double.NaN;
            sb.AppendLine(Line(timing) + string.Format(ci, "  {0:F2} × copy{1}", VsCopy(type), double.IsNaN(goal) ? "" : $" (goal ≥ {goal})")
                + string.Format(ci, "; thread-seconds read {0:F3}, encode {1:F3}, write {2:F3}, flush {3:F3}", s.Read, s.Encode, s.Write, s.Flush));
        }
        sb.AppendLine(string.Format(ci, "quantize q4_K:   {0,8:N1} MB/s on 1 core, {1:N1} MB/s on {2} cores ({3:F2}×)",
            QuantizeQ4KOneCore.MedianMBps, QuantizeQ4KAllCores.MedianMBps, Machine.Cores, QuantizeSpeedup));
        foreach (var w in Warnings) sb.AppendLine(w);
        return sb.ToString().TrimEnd();
    }
}

/// <summary>
/// Times `export` at F16, BF16 and Q8_0 (F32 source bytes per second, validation off) against a plain copy of the
/// source safetensors file (read and written through user space and forced to disk, as the exporter forces its
/// output), in rounds: each round runs the copy and every export once, so a change in machine load hits all
/// figures alike; the ratios are of medians. Plus Q4_K quantization on one core and on all cores. It calls the
/// exporter as a user would and reads the stage times the exporter reports.
/// </summary>
public static class GgufExportBenchmark
{
    public static readonly GgufExportType[] Types = { GgufExportType.F16, GgufExportType.BF16, GgufExportType.Q8_0 };

    public static ExportBenchmarkResult Run(string? modelDirectory, string workDirectory, int repeats, TextWriter? log = null)
    {
        if (repeats < 1) throw new ArgumentOutOfRangeException(nameof(repeats), "at least one repeat");
        Directory.CreateDirectory(workDirectory);
        string loadBefore = BenchmarkMachine.LoadAverage();
        string model = modelDirectory ?? CreateSyntheticModel(Path.Combine(workDirectory, "model"), log);
        string weights = Path.Combine(model, "model.safetensors");
        if (!File.Exists(weights)) throw new EngineException($"{model}: the benchmark needs a single model.safetensors file");
        long sourceBytes;
        using (var parts = ModelLoader.OpenParts(model).Weights)
            sourceBytes = parts.Names.Sum(n => parts.Shape(n).Aggregate(4L, (a, d) => a * d));
        long fileBytes = new FileInfo(weights).Length;

        string copy = Path.Combine(workDirectory, "copy.bin");
        string output = Path.Combine(workDirectory, "out.gguf");
        static void Remove(string p) { if (File.Exists(p)) File.Delete(p); }
        GgufExportResult Export(GgufExportType type)
        {
            var result = GgufExporter.Export(model, output, new GgufExportOptions { Type = type, Force = true });
            Remove(output);
            return result;
        }

        // Warm-up: the page cache holds the source, and every code path is compiled, before anything is timed.
        StreamCopy(weights, copy);
        Remove(copy);
        foreach (var type in Types) Export(type);

        var copyRuns = new Runs();
        var exportRuns = Types.ToDictionary(t => t, _ => new Runs());
        var timings = Types.ToDictionary(t => t, _ => new List<GgufExportTimings>());
        for (int round = 1; round <= repeats; round++)
        {
            copyRuns.Time(() => { StreamCopy(weights, copy); Remove(copy); });
            log?.WriteLine($"  round {round}: copy {copyRuns.Wall[^1]:F3} s");
            foreach (var type in Types)
            {
                GgufExportResult? result = null;
                exportRuns[type].Time(() => result = Export(type));
                timings[type].Add(result!.Timings);
                log?.WriteLine($"  round {round}: export {GgufExportTypes.Name(type)} {exportRuns[type].Wall[^1]:F3} s");
            }
        }

        var values = new float[1 << 22];
        var rng = new Random(1);
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() - 0.5);
        var encoded = new byte[GgmlTypes.RowBytes(GgmlType.Q4_K, 4096) * (values.Length / 4096)];
        RepeatedTiming Quantize(int threads, string name)
        {
            var runs = new Runs();
            for (int i = 0; i < repeats; i++)
            {
                int previous = GgmlCodec.MaxDegreeOfParallelism;
                GgmlCodec.MaxDegreeOfParallelism = threads;
                try { unsafe { runs.Time(() => { fixed (float* s = values) fixed (byte* d = encoded) GgmlCodec.EncodeRows(GgmlType.Q4_K, s, d, values.Length / 4096, 4096); }); } }
                finally { GgmlCodec.MaxDegreeOfParallelism = previous; }
            }
            log?.WriteLine($"  {name}: {string.Join(", ", runs.Wall.Select(s => s.ToString("F3", CultureInfo.InvariantCulture)))} s");
            return runs.Timing(name, values.Length * 4L);
        }
        var one = Quantize(1, "quantize q4_K 1 core");
        var all = Quantize(-1, "quantize q4_K all cores");

        static double Med(IEnumerable<TimeSpan> t) => RepeatedTiming.Median(t.Select(s => s.TotalSeconds));
        return new ExportBenchmarkResult
        {
            SourceBytes = sourceBytes,
            Repeats = repeats,
            Machine = BenchmarkMachine.Describe(timings[Types[0]][0].Workers, loadBefore),
            Copy = copyRuns.Timing("copy", fileBytes),
            Exports = Types.ToDictionary(t => t, t => exportRuns[t].Timing($"export {GgufExportTypes.Name(t)}", sourceBytes)),
            Stages = Types.ToDictionary(t => t, t => new ExportStageMedians(Med(timings[t].Select(x => x.Read)), Med(timings[t].Select(x => x.Encode)),
                Med(timings[t].Select(x => x.Write)), Med(timings[t].Select(x => x.Flush)), timings[t][0].Workers)),
            QuantizeQ4KOneCore = one,
            QuantizeQ4KAllCores = all,
        };
    }

    /// <summary>Wall and process CPU seconds of each run.</summary>
    sealed class Runs
    {
        public List<double> Wall { get; } = new();
        public List<double> Cpu { get; } = new();

        public void Time(Action run)
        {
            var cpu = ProcessCpu();
            long start = Stopwatch.GetTimestamp();
            run();
            Wall.Add(Stopwatch.GetElapsedTime(start).TotalSeconds);
            Cpu.Add((ProcessCpu() - cpu).TotalSeconds);
        }

        public RepeatedTiming Timing(string name, long bytes) => new(name, bytes, Wall, Cpu);

        static TimeSpan ProcessCpu()
        {
            using var process = Process.GetCurrentProcess();
            return process.TotalProcessorTime;
        }
    }

    /// <summary>The baseline: read and write through user space, then force the copy to disk as the exporter does its output.</summary>
    static void StreamCopy(string from, string to)
    {
        using var input = new FileStream(from, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        using var output = new FileStream(to, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        input.CopyTo(output, 1 << 22);
        output.Flush(true);
    }

    /// <summary>A random Llama of about 250 MB (F32) with a synthetic SentencePiece vocabulary, in HF layout.</summary>
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
