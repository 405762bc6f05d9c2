using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Engine.Bench;
using Engine.Cli.Options;

namespace Engine.Cli.Commands;

/// <summary>`engine bench kernels`: fused vs naive per-token log-prob, forward + backward, with the hardware floor and extra memory; the
/// dequantizing matmul, the fused layer kernels and the multi-tensor AdamW against their composites.</summary>
public sealed record BenchKernelsArgs(KernelBenchOptions Bench, bool Json = false)
{
    /// <summary>Tokens per layer-kernel case (bench-25m's DPO step: 4 pairs × 2 × 256).</summary>
    public long Tokens { get; init; } = 2048;
}

public sealed class BenchKernelsCommand : CliCommand<BenchKernelsArgs>
{
    public override string Name => "bench kernels";
    public override string Summary => "Benchmark the fused per-token log-prob against TorchSharp's log_softmax+gather, the dequantizing matmul against the bf16 matmul, the fused RMSNorm/RoPE/SwiGLU/GeGLU and the multi-tensor AdamW against their composites (CPU).";
    protected override BenchKernelsArgs Defaults => new(new KernelBenchOptions());

    static CliOption<BenchKernelsArgs> B(CliOption<KernelBenchOptions> o) => o.Lift<BenchKernelsArgs>(a => a.Bench, (a, b) => a with { Bench = b });

    static long PositiveLong(string s, string what) =>
        long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) && v >= 1 && v <= 1_000_000_000 ? v
            : throw new UsageException($"{what} takes positive integers separated by commas (got '{s}')");

    protected override IReadOnlyList<CliOption<BenchKernelsArgs>> Options { get; } = new[]
    {
        Opt<BenchKernelsArgs>.Flag("json", "stream one JSON object per case", a => a.Json, (a, v) => a with { Json = v }),
        Opt<BenchKernelsArgs>.Int("tokens", "tokens per layer-kernel case (shapes of bench-25m)", a => (int)a.Tokens, (a, v) => a with { Tokens = v }, min: 8),
        B(Opt<KernelBenchOptions>.List("rows", "rows (tokens) per case", "N,N,...", PositiveLong, o => o.Rows, (o, v) => o with { Rows = v }, sample: "64")),
        B(Opt<KernelBenchOptions>.List("vocab", "vocabulary sizes", "V,V,...", PositiveLong, o => o.Vocab, (o, v) => o with { Vocab = v }, sample: "512")),
        B(Opt<KernelBenchOptions>.List("dtype", "logit dtypes", "f32,bf16", (s, what) => s is "f32" or "bf16" ? s : throw new UsageException($"{what} takes f32 and/or bf16 (got '{s}')"),
            o => o.Dtypes, (o, v) => o with { Dtypes = v }, sample: "f32")),
        B(Opt<KernelBenchOptions>.Int("repeat", "timed repeats per measurement", o => o.Repeat, (o, v) => o with { Repeat = v }, min: 1)),
        B(Opt<KernelBenchOptions>.Int("head-hidden", "hidden size of the naive vs chunked head comparison (0: skip it)", o => (int)o.HeadHidden,
            (o, v) => o with { HeadHidden = v }, min: 0)),
        B(Opt<KernelBenchOptions>.Flag("no-memory", "skip the extra-memory measurements", o => !o.MeasureMemory, (o, v) => o with { MeasureMemory = !v })),
        B(Opt<KernelBenchOptions>.OptionalInt("threads", "native kernel threads (default: the CPUs this process may use)", o => o.Threads, (o, v) => o with { Threads = v }, min: 1)),
        B(Opt<KernelBenchOptions>.List("case", "cases: logprob (fused log-prob vs naive), qmatmul (dequantizing matmul vs bf16 matmul), " +
            "rmsnorm, rope, swiglu, geglu (fused layer kernels vs their composites), adamw (clipping + AdamW over a model's parameters)", string.Join(",", KernelBenchOptions.AllCases),
            (s, what) => KernelBenchOptions.AllCases.Contains(s) ? s : throw new UsageException($"{what} takes {string.Join(", ", KernelBenchOptions.AllCases)} (got '{s}')"),
            o => o.Cases, (o, v) => o with { Cases = v }, sample: "qmatmul")),
        B(Opt<KernelBenchOptions>.List("qmatmul-rows", "qmatmul: rows (tokens) per case", "N,N,...", PositiveLong, o => o.QmatmulRows, (o, v) => o with { QmatmulRows = v }, sample: "16")),
        B(Opt<KernelBenchOptions>.Int("qmatmul-size", "qmatmul: out = in features of the weight", o => (int)o.QmatmulSize, (o, v) => o with { QmatmulSize = v }, min: 1)),
        B(Opt<KernelBenchOptions>.List("qmatmul-format", "qmatmul: weight formats", "nf4,nf4-dq,int8",
            (s, what) => s is "nf4" or "nf4-dq" or "int8" ? s : throw new UsageException($"{what} takes nf4, nf4-dq and/or int8 (got '{s}')"),
            o => o.QmatmulFormats, (o, v) => o with { QmatmulFormats = v }, sample: "nf4")),
        B(Opt<KernelBenchOptions>.Choice("isa", "force the CPU kernels' instruction set (default: the best available)", new[] { "scalar", "avx2", "avx512" }, v => v,
            o => o.Isa, (o, v) => o with { Isa = v })),
        B(Opt<KernelBenchOptions>.String("adamw-model", "model (preset name or model folder) whose parameters the adamw case updates", o => o.AdamWModel,
            (o, v) => o with { AdamWModel = v }, valueName: "MODEL", sample: "bench-25m")),
    };

    protected override int Execute(Parsed<BenchKernelsArgs> parsed, CliContext context)
    {
        var (options, json) = parsed.Value;
        var w = context.Out;
        // JSON is streamed one case per line, so a long run that is interrupted still leaves every finished case.
        if (json) w.WriteLine("[");
        var rows = new RowWriter(w, json);
        string load = BenchmarkMachine.LoadAverage();
        if (options.Cases.Contains("logprob")) load = RunLogProb(options, rows, context, load);
        if (options.Cases.Contains("qmatmul")) RunQuantizedMatmul(options, rows, context);
        var layerKernels = LayerKernelBenchmark.Kernels.Where(options.Cases.Contains).ToList();
        if (layerKernels.Count > 0) RunLayerKernels(layerKernels, parsed.Value.Tokens, options, rows, context);
        if (options.Cases.Contains("adamw")) load = RunAdamW(options, rows, context, load);
        if (json) w.WriteLine("]");
        else w.WriteLine($"machine: {BenchmarkMachine.Describe(KernelBenchmark.Threads, load)}");
        return 0;
    }

    /// <summary>Each measured case as it comes: one JSON object per line inside the array, or one line of the text table.</summary>
    sealed class RowWriter(TextWriter w, bool json)
    {
        bool _first = true;

        public void Header(string line)
        {
            if (!json) w.WriteLine(line);
        }

        public void Row<T>(T result, Func<T, string> text)
        {
            if (json)
            {
                w.WriteLine((_first ? "  " : ", ") + JsonSerializer.Serialize(result, JsonOptions));
                _first = false;
            }
            else
                w.WriteLine(text(result));
            w.Flush();
        }
    }

    static string RunLogProb(KernelBenchOptions options, RowWriter rows, CliContext context, string load)
    {
        rows.Header($"{"rows",6} {"vocab",7} {"dtype",5} {"naive ms",9} {"fused ms",9} {"speedup",7} {"fwd ms",8} {"floor ms",8} {"fwd/floor",9} {"naive extra",12} {"fused extra",12} {"head naive",12} {"head chunked",12}");
        foreach (var measured in KernelBenchmark.Run(options, msg => context.Err.WriteLine(msg)))
        {
            var r = measured.Described(BenchmarkMachine.Describe(KernelBenchmark.Threads, load));
            load = BenchmarkMachine.LoadAverage();
            foreach (var warning in r.Warnings) context.Err.WriteLine(warning);
            rows.Row(r, r => $"{r.Rows,6} {r.Vocab,7} {r.Dtype,5} {F(r.NaiveMs),9} {F(r.FusedMs),9} {F(r.Speedup, "x"),7} {F(r.FusedForwardMs),8} {F(r.FloorMs),8} {F(r.ForwardOverFloor, "x"),9} " +
                                 $"{Mb(r.NaiveExtraBytes),12} {Mb(r.FusedExtraBytes),12} {Mb(r.HeadNaiveExtraBytes),12} {Mb(r.HeadChunkedExtraBytes),12}" + (r.Note is null ? "" : $"  ({r.Note})"));
        }
        return load;
    }

    static void RunQuantizedMatmul(KernelBenchOptions options, RowWriter rows, CliContext context)
    {
        rows.Header($"{"rows",6} {"out x in",11} {"format",6} {"bf16 ms",8} {"q ms",8} {"rate",6} {"pairs min-max",14} {"bf16 dx ms",10} {"q dx ms",8} {"rate",6}");
        foreach (var result in QuantizedMatmulBenchmark.Run(options, msg => context.Err.WriteLine(msg)))
            rows.Row(result, r =>
            {
                var pairs = r.MinMedianMax["forward_rate_ratio_pairs"];
                return $"{r.Rows,6} {$"{r.OutFeatures}x{r.InFeatures}",11} {r.Format,6} {F(r.Bf16MatmulMs),8} {F(r.QmatmulMs),8} {F(r.ForwardRateRatio),6} " +
                       $"{$"{F(pairs[0])}-{F(pairs[2])}",14} {F(r.Bf16InputGradMs),10} {F(r.QmatmulInputGradMs),8} {F(r.InputGradRateRatio),6}";
            });
    }

    static void RunLayerKernels(IReadOnlyList<string> layerKernels, long tokens, KernelBenchOptions options, RowWriter rows, CliContext context)
    {
        rows.Header($"{"kernel",-8} {"dtype",5} {"shape",-22} {"fused ms",9} {"torch ms",9} {"speedup",7} {"MB moved",9} {"floor ms",8} {"fused/floor",11} {"kernel ms",9} {"kernel/floor",12}");
        foreach (var result in LayerKernelBenchmark.Run(layerKernels, options.Dtypes, tokens, "bench-25m", options.Repeat, msg => context.Err.WriteLine(msg)))
            rows.Row(result, r => $"{r.Kernel,-8} {r.Dtype,5} {r.Shape,-22} {F(r.FusedMs),9} {F(r.CompositeMs),9} {F(r.Speedup, "x"),7} {r.BytesMoved / 1e6,9:F1} {F(r.FloorMs),8} " +
                                  $"{F(r.FusedOverFloor, "x"),11} {F(r.KernelMs),9} {F(r.KernelOverFloor, "x"),12}");
    }

    static string RunAdamW(KernelBenchOptions options, RowWriter rows, CliContext context, string load)
    {
        rows.Header($"{"adamw",6} {"params",10} {"dtype",5} {"state",5} {"torch ms",9} {"fused ms",9} {"speedup",7} {"floor ms",8} {"fused/floor",11} {"GB/s",6}");
        foreach (var measured in AdamWBenchmark.Run(options, msg => context.Err.WriteLine(msg)))
        {
            var r = measured.Described(BenchmarkMachine.Describe(KernelBenchmark.Threads, load));
            load = BenchmarkMachine.LoadAverage();
            foreach (var warning in r.Warnings) context.Err.WriteLine(warning);
            rows.Row(r, r => $"{"",6} {r.Parameters,10} {r.Dtype,5} {r.StateDtype,5} {F(r.TorchMs),9} {F(r.FusedMs),9} {F(r.Speedup, "x"),7} {F(r.FloorMs),8} {F(r.FusedOverFloor, "x"),11} {F(r.BandwidthGBs),6}");
        }
        return load;
    }

    static readonly JsonSerializerOptions JsonOptions = new() { DefaultIgnoreCondition = JsonIgnoreCondition.Never, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    static string F(double? v, string suffix = "") => v is double d ? d.ToString(d < 10 ? "F2" : "F1", CultureInfo.InvariantCulture) + suffix : "-";
    static string Mb(long? v) => v is long b ? (b / 1e6).ToString("F1", CultureInfo.InvariantCulture) + " MB" : "-";
}
