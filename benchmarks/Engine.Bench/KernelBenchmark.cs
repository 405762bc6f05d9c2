using System.Diagnostics;
using System.Text.Json.Serialization;
using Engine.Util;
using Engine.Kernels;
using Engine.Memory;
using static TorchSharp.torch;

namespace Engine.Bench;

/// <summary>One measured case of <see cref="KernelBenchmark"/>: times in ms (median), memory in bytes beyond inputs and outputs.</summary>
public sealed record KernelBenchResult
{
    [JsonPropertyName("rows")] public long Rows { get; init; }
    [JsonPropertyName("vocab")] public long Vocab { get; init; }
    [JsonPropertyName("dtype")] public string Dtype { get; init; } = "";
    [JsonPropertyName("threads")] public int Threads { get; init; }
    [JsonPropertyName("isa")] public string Isa { get; init; } = "";
    /// <summary>TorchSharp log_softmax + gather, forward + backward.</summary>
    [JsonPropertyName("naive_ms")] public double? NaiveMs { get; init; }
    [JsonPropertyName("naive_forward_ms")] public double? NaiveForwardMs { get; init; }
    /// <summary>The fused autograd function, forward + backward into a new gradient buffer.</summary>
    [JsonPropertyName("fused_ms")] public double? FusedMs { get; init; }
    [JsonPropertyName("fused_forward_ms")] public double? FusedForwardMs { get; init; }
    /// <summary>Forward + backward writing the gradient over the logits (how the Fused head runs in training).</summary>
    [JsonPropertyName("fused_in_place_ms")] public double? FusedInPlaceMs { get; init; }
    /// <summary>One read and one exp per logit, vectorised, same threads: the forward's hardware floor.</summary>
    [JsonPropertyName("floor_ms")] public double? FloorMs { get; init; }
    /// <summary>Peak resident memory above the start, minus the outputs (the logits' gradient, log-probs, means); a
    /// few pages of noise either way, so it may be slightly negative.</summary>
    [JsonPropertyName("naive_extra_bytes")] public long? NaiveExtraBytes { get; init; }
    [JsonPropertyName("fused_extra_bytes")] public long? FusedExtraBytes { get; init; }
    [JsonPropertyName("speedup")] public double? Speedup => NaiveMs / FusedMs;
    [JsonPropertyName("forward_over_floor")] public double? ForwardOverFloor => FusedForwardMs / FloorMs;
    [JsonPropertyName("extra_bytes_ratio")] public double? ExtraBytesRatio => NaiveExtraBytes is > 0 ? (double?)FusedExtraBytes / NaiveExtraBytes : null;
    /// <summary>The lm_head variants (hidden [rows, H] · W[vocab, H]ᵀ): naive head vs chunked head, when H &gt; 0.</summary>
    [JsonPropertyName("head_hidden")] public long? HeadHidden { get; init; }
    [JsonPropertyName("head_chunk_rows")] public long? HeadChunkRows { get; init; }
    [JsonPropertyName("head_naive_ms")] public double? HeadNaiveMs { get; init; }
    [JsonPropertyName("head_chunked_ms")] public double? HeadChunkedMs { get; init; }
    [JsonPropertyName("head_naive_extra_bytes")] public long? HeadNaiveExtraBytes { get; init; }
    [JsonPropertyName("head_chunked_extra_bytes")] public long? HeadChunkedExtraBytes { get; init; }
    /// <summary>rows × vocab × 4: the fp32 logits the chunked head must never allocate.</summary>
    [JsonPropertyName("rows_x_vocab_f32_bytes")] public long RowsByVocabF32Bytes => Rows * Vocab * 4;
    /// <summary>
    /// Per timed figure (keys as the *_ms fields without the suffix): [min, median, max] over the repeats, and
    /// "forward_over_floor_pairs": the same for the ratio of each forward to the floor run right after it.
    /// </summary>
    [JsonPropertyName("min_median_max_ms")] public IReadOnlyDictionary<string, double[]> MinMedianMax { get; init; } = new Dictionary<string, double[]>();
    [JsonPropertyName("repeat")] public int Repeat { get; init; }
    [JsonPropertyName("note")] public string? Note { get; init; }
    [JsonPropertyName("machine")] public Dictionary<string, object>? Machine { get; init; }
    [JsonPropertyName("warnings")] public IReadOnlyList<string> Warnings { get; init; } = Array.Empty<string>();

    /// <summary>This case with the machine it ran on and a warning for each timed figure whose spread is too wide.</summary>
    public KernelBenchResult Described(BenchmarkMachine machine) => this with
    {
        Machine = machine.ToJson(),
        Warnings = MinMedianMax.Where(f => !f.Key.EndsWith("_pairs"))
            .Select(f => new Spread(f.Value[0], f.Value[1], f.Value[2]).WarningFor($"{Rows}x{Vocab} {Dtype} {f.Key}", machine))
            .OfType<string>().ToList(),
    };
}

public sealed record KernelBenchOptions
{
    public static readonly long[] DefaultRows = { 1024, 4096, 8192 };
    public static readonly long[] DefaultVocab = { 32000, 32768, 128256 };
    public static readonly string[] DefaultDtypes = { "f32", "bf16" };

    public IReadOnlyList<long> Rows { get; init; } = DefaultRows;
    public IReadOnlyList<long> Vocab { get; init; } = DefaultVocab;
    public IReadOnlyList<string> Dtypes { get; init; } = DefaultDtypes;
    public int Repeat { get; init; } = 5;
    /// <summary>Hidden size of the head comparison (naive vs chunked); 0 skips it.</summary>
    public long HeadHidden { get; init; } = 64;
    public bool MeasureMemory { get; init; } = true;
    /// <summary>Native kernel threads (default: the CPUs this process may use).</summary>
    public int? Threads { get; init; }
    /// <summary>Force the CPU kernels' instruction set: scalar, avx2 or avx512 (default: the best available).</summary>
    public string? Isa { get; init; }
    /// <summary>Cases to run: "logprob" (this benchmark), "qmatmul" (<see cref="QuantizedMatmulBenchmark"/>), the layer
    /// kernels (<see cref="LayerKernelBenchmark.Kernels"/>) and "adamw" (<see cref="AdamWBenchmark"/>).</summary>
    public IReadOnlyList<string> Cases { get; init; } = new[] { "logprob" };
    public static IReadOnlyList<string> AllCases => new[] { "logprob", "qmatmul" }.Concat(LayerKernelBenchmark.Kernels).Append("adamw").ToList();
    /// <summary>qmatmul: rows (tokens), the square weight's size, and the formats.</summary>
    public IReadOnlyList<long> QmatmulRows { get; init; } = QuantizedMatmulBenchmark.DefaultRows;
    public long QmatmulSize { get; init; } = 4096;
    public IReadOnlyList<string> QmatmulFormats { get; init; } = new[] { "nf4", "nf4-dq" };
    /// <summary>The model (preset name or model folder) whose parameters the AdamW case updates.</summary>
    public string AdamWModel { get; init; } = "bench-25m";
}

/// <summary>
/// Fused vs naive per-token log-prob on the CPU, measured in the same process and run so the ratios are meaningful
/// on a noisy shared machine. Cases that do not fit in the available memory are skipped with a note.
/// </summary>
public static class KernelBenchmark
{
    const long Headroom = 2L << 30;

    /// <summary>The native kernels' worker count, for the machine description.</summary>
    public static int Threads => NativeKernels.IsAvailable ? NativeKernels.Threads : 1;

    public static IEnumerable<KernelBenchResult> Run(KernelBenchOptions options, Action<string>? log = null)
    {
        NativeKernels.EnsureAvailable();
        NativeKernels.Threads = options.Threads ?? 0;
        if (!NativeKernels.TryForceIsa(options.Isa))
            throw new EngineException($"this CPU (or this build of the native library) has no {options.Isa} kernels");
        foreach (long rows in options.Rows)
            foreach (long vocab in options.Vocab)
                foreach (string dtype in options.Dtypes)
                {
                    log?.Invoke($"{rows} x {vocab} {dtype} ...");
                    yield return RunCase(rows, vocab, dtype, options);
                }
    }

    /// <summary>Min, median and max of repeated measurements.</summary>
    internal readonly record struct Timing(double Min, double Median, double Max)
    {
        public static Timing Of(IReadOnlyList<double> xs)
        {
            var sorted = xs.Order().ToArray();
            int n = sorted.Length;
            double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
            return new Timing(sorted[0], median, sorted[^1]);
        }
        public double[] ToArray() => new[] { Min, Median, Max };
    }

    static double Once(Action action, Action? setup)
    {
        setup?.Invoke();
        var sw = Stopwatch.StartNew();
        action();
        return sw.Elapsed.TotalMilliseconds;
    }

    /// <summary>Runs once to warm up, then <paramref name="repeat"/> times, in milliseconds (setup untimed).</summary>
    static Timing Time(int repeat, Action action, Action? setup = null)
    {
        Once(action, setup);
        return Timing.Of(Enumerable.Range(0, repeat).Select(_ => Once(action, setup)).ToList());
    }

    /// <summary>Two measurements alternated (a, b, a, b, ...), so both see the same load on a shared machine; also the per-pair ratios a/b. <paramref name="setup"/> runs untimed before each.</summary>
    internal static (Timing A, Timing B, Timing Ratio) TimeAlternating(int repeat, Action a, Action b, Action? setup = null)
    {
        Once(a, setup);
        Once(b, setup);
        var ta = new List<double>();
        var tb = new List<double>();
        for (int i = 0; i < repeat; i++)
        {
            ta.Add(Once(a, setup));
            tb.Add(Once(b, setup));
        }
        return (Timing.Of(ta), Timing.Of(tb), Timing.Of(ta.Zip(tb, (x, y) => x / y).ToList()));
    }


    static KernelBenchResult RunCase(long rows, long vocab, string dtypeName, KernelBenchOptions options)
    {
        var dtype = TensorMemory.ParseDtype(dtypeName);
        if (dtype is not (ScalarType.Float32 or ScalarType.BFloat16))
            throw new EngineException($"bench kernels: dtype must be f32 or bf16 (got {dtypeName})");
        long elem = dtype == ScalarType.Float32 ? 4 : 2;
        long n = rows * vocab;
        // Peak resident bytes of each path, inputs included. Naive: the logits, log_softmax's output, gather's
        // zero-filled gradient, log_softmax's gradient (+ for bf16 an fp32 copy of the logits and the bf16 gradient).
        // Fused: the logits, a scratch copy for the in-place run, and the gradient. A safety factor covers what the
        // estimate misses (allocator slack, the runtime); a case that may not fit is skipped, never run into the OOM killer.
        long naiveNeed = n * elem + 3 * n * 4 + (elem == 2 ? n * 4 + n * 2 : 0);
        long fusedNeed = 3 * n * elem;
        long available = ProcessMemory.AvailableBytes();
        bool Fits(long need) => need * 1.15 + Headroom <= available;
        var result = new KernelBenchResult
        {
            Rows = rows, Vocab = vocab, Dtype = dtype == ScalarType.BFloat16 ? "bf16" : "f32",
            Threads = NativeKernels.Threads, Isa = NativeKernels.IsaName,
        };
        if (!Fits(fusedNeed))
            return result with { Note = $"skipped: needs about {fusedNeed / 1e9:F1} GB, {available / 1e9:F1} GB available" };
        bool runNaive = Fits(naiveNeed);

        using var scope = NewDisposeScope();
        var gen = new Generator(1234);
        var logits = (randn(new[] { rows, vocab }, generator: gen) * 2).to(dtype);
        var labels = randint(0, vocab, new[] { rows }, generator: gen);
        var gradOut = randn(new[] { rows }, generator: gen);

        void FusedForward()
        {
            using var s = NewDisposeScope();
            using var _ = no_grad();
            LogProbKernels.Forward(logits, labels);
        }
        void FusedForwardBackward(bool inPlace, Tensor? target = null)
        {
            using var s = NewDisposeScope();
            var input = target ?? logits;
            var (lp, _) = FusedLogProbFunction.Apply(input, labels, inPlace);
            // Drive the function's backward directly: autograd.grad returns the logits' gradient without
            // accumulating into a leaf (which would add a copy to the measurement).
            autograd.grad(new[] { lp }, new[] { input }, new[] { gradOut });
        }
        void NaiveForwardBackward()
        {
            using var s = NewDisposeScope();
            var r = TokenLogProbs.Naive(logits, labels);
            autograd.grad(new[] { r.LogProbs }, new[] { logits }, new[] { gradOut });
        }
        void NaiveForward()
        {
            using var s = NewDisposeScope();
            using var _ = no_grad();
            TokenLogProbs.Naive(logits, labels);
        }
        void Floor()
        {
            using var s = NewDisposeScope();
            LogProbKernels.FloorExpSum(logits);
        }

        logits.requires_grad_(true);
        // In place: the gradient overwrites a scratch copy of the logits (as the Fused head overwrites its private logits).
        var scratch = logits.detach().clone().requires_grad_(true);
        var spread = new Dictionary<string, double[]>();
        var fused = Time(options.Repeat, () => FusedForwardBackward(false));
        // The in-place backward hands the scratch's storage to the gradient and empties the saved logits (so a head's
        // [M, V] buffer is freed as soon as its backward is done): each run gets a fresh scratch copy, untimed.
        var fusedInPlace = Time(options.Repeat, () => FusedForwardBackward(true, scratch), () =>
        {
            scratch.Dispose();
            scratch = logits.detach().clone().requires_grad_(true);
        });
        scratch.Dispose(); // not needed again: keep the naive run's peak free of it
        var (fusedForward, floor, forwardOverFloor) = TimeAlternating(options.Repeat, FusedForward, Floor);
        spread["fused"] = fused.ToArray();
        spread["fused_in_place"] = fusedInPlace.ToArray();
        spread["fused_forward"] = fusedForward.ToArray();
        spread["floor"] = floor.ToArray();
        spread["forward_over_floor_pairs"] = forwardOverFloor.ToArray();
        double? naiveMs = null, naiveForwardMs = null;
        if (runNaive)
        {
            var naive = Time(options.Repeat, NaiveForwardBackward);
            var naiveForward = Time(options.Repeat, NaiveForward);
            (naiveMs, naiveForwardMs) = (naive.Median, naiveForward.Median);
            spread["naive"] = naive.ToArray();
            spread["naive_forward"] = naiveForward.ToArray();
        }
        long gradBytes = n * elem, outputBytes = rows * 4 * 2; // the logits' gradient; log-probs and mean logits
        long? fusedExtra = null, naiveExtra = null;
        if (options.MeasureMemory && ProcessMemory.PeakTrackingAvailable)
        {
            fusedExtra = ProcessMemory.PeakIncrease(() => FusedForwardBackward(false)) - gradBytes - outputBytes;
            if (runNaive) naiveExtra = ProcessMemory.PeakIncrease(NaiveForwardBackward) - gradBytes - outputBytes;
        }
        result = result with
        {
            NaiveMs = naiveMs, NaiveForwardMs = naiveForwardMs, FusedMs = fused.Median, FusedForwardMs = fusedForward.Median,
            FusedInPlaceMs = fusedInPlace.Median, FloorMs = floor.Median, NaiveExtraBytes = naiveExtra, FusedExtraBytes = fusedExtra,
            MinMedianMax = spread, Repeat = options.Repeat,
            Note = runNaive ? null : $"naive skipped: needs about {naiveNeed / 1e9:F1} GB, {available / 1e9:F1} GB available",
        };
        logits.requires_grad_(false);
        return options.HeadHidden > 0 ? WithHead(result, logits, labels, gradOut, options, dtype, runNaive) : result;
    }

    /// <summary>Naive head (linear then log_softmax + gather) vs the chunked head, forward + backward to hidden and weight.</summary>
    static KernelBenchResult WithHead(KernelBenchResult result, Tensor logits, Tensor labels, Tensor gradOut, KernelBenchOptions options,
                                      ScalarType dtype, bool runNaive)
    {
        long rows = result.Rows, vocab = result.Vocab, h = options.HeadHidden;
        using var scope = NewDisposeScope();
        logits.Dispose(); // the head benchmarks make their own logits (or not)
        var gen = new Generator(99);
        var hidden = randn(new[] { rows, h }, generator: gen).to(dtype).requires_grad_(true);
        var weight = (randn(new[] { vocab, h }, generator: gen) * 0.1).to(dtype).requires_grad_(true);
        long chunk = ChunkedLinearLogProbFunction.DefaultChunkRows(rows, vocab);

        void Head(LogProbMode mode)
        {
            using var s = NewDisposeScope();
            var r = TokenLogProbs.FromHidden(hidden, weight, labels, mode, chunk);
            autograd.grad(new[] { r.LogProbs }, new[] { hidden, weight }, new[] { gradOut });
        }
        var chunked = Time(options.Repeat, () => Head(LogProbMode.Chunked));
        Timing? naive = runNaive ? Time(options.Repeat, () => Head(LogProbMode.Naive)) : null;
        var spread = new Dictionary<string, double[]>(result.MinMedianMax) { ["head_chunked"] = chunked.ToArray() };
        if (naive is { } n) spread["head_naive"] = n.ToArray();
        long gradBytes = (rows * h + vocab * h) * (dtype == ScalarType.Float32 ? 4 : 2) + rows * 8;
        long? chunkedExtra = null, naiveExtra = null;
        if (options.MeasureMemory && ProcessMemory.PeakTrackingAvailable)
        {
            chunkedExtra = ProcessMemory.PeakIncrease(() => Head(LogProbMode.Chunked)) - gradBytes;
            if (runNaive) naiveExtra = ProcessMemory.PeakIncrease(() => Head(LogProbMode.Naive)) - gradBytes;
        }
        return result with
        {
            HeadHidden = h, HeadChunkRows = chunk, HeadNaiveMs = naive?.Median, HeadChunkedMs = chunked.Median, MinMedianMax = spread,
            HeadNaiveExtraBytes = naiveExtra, HeadChunkedExtraBytes = chunkedExtra,
        };
    }
}
