using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Engine.Kernels.Benchmarking;

namespace Engine.Cli.Commands;

/// <summary>`engine bench kernels`: fused vs naive per-token log-prob, forward + backward, with the hardware floor and extra memory.</summary>
public sealed class BenchKernelsCommand : ICliCommand
{
    public string Name => "bench kernels";
    public string Summary => "Benchmark the fused per-token log-prob against TorchSharp's log_softmax+gather (CPU).";
    public string Usage => "bench kernels [--json] [--rows 1024,4096,8192] [--vocab 32000,32768,128256] [--dtype f32,bf16] " +
                           "[--repeat 5] [--head-hidden 64] [--threads N] [--isa scalar|avx2|avx512] [--no-memory]";

    public int Run(CliArgs args)
    {
        bool json = args.Flag("json");
        var options = new KernelBenchOptions
        {
            Rows = Longs(args, "rows") ?? KernelBenchOptions.DefaultRows,
            Vocab = Longs(args, "vocab") ?? KernelBenchOptions.DefaultVocab,
            Dtypes = args.String("dtype")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? KernelBenchOptions.DefaultDtypes,
            Repeat = args.Int("repeat", min: 1) ?? 5,
            HeadHidden = args.Int("head-hidden", min: 0) ?? 64,
            MeasureMemory = !args.Flag("no-memory"),
            Threads = args.Int("threads", min: 1),
            Isa = args.String("isa"),
        };
        args.EnsureAllUsed();
        foreach (string d in options.Dtypes)
            if (d is not ("f32" or "bf16")) throw new UsageException($"bench kernels: --dtype takes f32 and/or bf16 (got '{d}')");
        if (options.Isa is not (null or "scalar" or "avx2" or "avx512")) throw new UsageException($"bench kernels: --isa must be scalar, avx2 or avx512 (got '{options.Isa}')");

        // JSON is streamed one case per line, so a long run that is interrupted still leaves every finished case.
        if (json) Console.WriteLine("[");
        else Console.WriteLine($"{"rows",6} {"vocab",7} {"dtype",5} {"naive ms",9} {"fused ms",9} {"speedup",7} {"fwd ms",8} {"floor ms",8} {"fwd/floor",9} {"naive extra",12} {"fused extra",12} {"head naive",12} {"head chunked",12}");
        bool first = true;
        foreach (var r in KernelBenchmark.Run(options, msg => Console.Error.WriteLine(msg)))
        {
            if (json)
            {
                Console.WriteLine((first ? "  " : ", ") + JsonSerializer.Serialize(r, JsonOptions));
                first = false;
            }
            else
                Console.WriteLine($"{r.Rows,6} {r.Vocab,7} {r.Dtype,5} {F(r.NaiveMs),9} {F(r.FusedMs),9} {F(r.Speedup, "x"),7} {F(r.FusedForwardMs),8} {F(r.FloorMs),8} {F(r.ForwardOverFloor, "x"),9} " +
                                  $"{Mb(r.NaiveExtraBytes),12} {Mb(r.FusedExtraBytes),12} {Mb(r.HeadNaiveExtraBytes),12} {Mb(r.HeadChunkedExtraBytes),12}" + (r.Note is null ? "" : $"  ({r.Note})"));
            Console.Out.Flush();
        }
        if (json) Console.WriteLine("]");
        return 0;
    }

    static readonly JsonSerializerOptions JsonOptions = new() { DefaultIgnoreCondition = JsonIgnoreCondition.Never, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    static long[]? Longs(CliArgs args, string name)
    {
        string? s = args.String(name);
        if (s is null) return null;
        var values = new List<long>();
        foreach (string part in s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!long.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) || v < 1 || v > 1_000_000_000)
                throw new UsageException($"bench kernels: --{name} takes positive integers separated by commas (got '{part}')");
            values.Add(v);
        }
        if (values.Count == 0) throw new UsageException($"bench kernels: --{name} is empty");
        return values.ToArray();
    }

    static string F(double? v, string suffix = "") => v is double d ? d.ToString(d < 10 ? "F2" : "F1", CultureInfo.InvariantCulture) + suffix : "-";
    static string Mb(long? v) => v is long b ? (b / 1e6).ToString("F1", CultureInfo.InvariantCulture) + " MB" : "-";
}
