using System.Text.Json;
using Engine.Kernels;
using Engine.Kernels.Benchmarking;
using Engine.Memory;
using Engine.Training;

namespace Engine.Cli.Commands;

public sealed class PlanCommand : ICliCommand
{
    public string Name => "plan";
    public string Summary => "Will a DPO/KTO run fit in VRAM, and with what micro-batch? Predicts the step's memory and picks the fastest settings that fit.";
    public string Usage =>
        "plan --model DIR|FILE.gguf|PRESET --method dpo|kto --seq-len N --vram SIZE [--target-batch 32] [--micro-batch B] " +
        "[--precision f32|bf16|bf16-pure] [--checkpointing on|off] [--logprob fused|chunked|naive] [--ref-mode cached|resident] " +
        "[--reference-free] [--optimizer-state-dtype f32|bf16] [--completion-fraction F] [--device cuda|cpu] [--json] [--measure [--repeats 3]]";

    public int Run(CliArgs args)
    {
        var source = PlanModelSource.Resolve(args.RequiredString("model"));
        var request = ReadRequest(args, source, args.RequiredString("method"), args.Int("seq-len", min: 2) ?? throw new UsageException("plan: --seq-len is required"));
        bool json = args.Flag("json");
        bool measure = args.Flag("measure");
        int repeats = args.Int("repeats", min: 1) ?? 3;
        args.EnsureAllUsed();

        var plan = MemoryPlanner.Plan(request);
        var report = PlanReport.ToJson(source.Name, plan);
        StepMeasurementResult? measured = null;
        MemoryEstimate? cpuEstimate = null;
        if (measure)
        {
            var settings = plan.Shown.Settings with { Device = MemoryDevice.Cpu };
            cpuEstimate = new StepMemoryModel(source.Config, settings).Estimate();
            long available = ProcessMemory.AvailableBytes();
            if (cpuEstimate.PeakBytes > available / 2)
                throw new EngineException($"--measure: the step needs about {ByteSize.Format(cpuEstimate.PeakBytes)} here and only {ByteSize.Format(available)} is available; " +
                    "measure a smaller configuration (--micro-batch, --seq-len)");
            if (!json) Console.Error.WriteLine($"measuring {repeats} step(s) on the CPU: {settings.Describe()} ...");
            measured = StepMeasurement.Run(source.Config, source.Path, settings, repeats);
            report["measured"] = PlanReport.MeasurementJson(cpuEstimate, measured);
            report["measured_peak_bytes"] = measured.PeakBytes;
        }
        if (json) Console.WriteLine(JsonSerializer.Serialize(report));
        else
        {
            PlanReport.WriteText(Console.Out, source.Name, plan);
            if (measured != null) PlanReport.WriteMeasurement(Console.Out, cpuEstimate!, measured);
        }
        return 0;
    }

    /// <summary>The plan options shared with <c>train --vram</c>.</summary>
    public static PlanRequest ReadRequest(CliArgs args, PlanModelSource source, string method, int seqLen)
    {
        var planMethod = method switch
        {
            "dpo" => PlanMethod.Dpo,
            "kto" => PlanMethod.Kto,
            _ => throw new EngineException($"memory planning covers dpo and kto (got '{method}')"),
        };
        var vram = args.String("vram") ?? throw new UsageException($"{args.Command}: --vram is required");
        return new PlanRequest
        {
            Config = source.Config,
            Method = planMethod,
            SeqLen = seqLen,
            BudgetBytes = ByteSize.Parse(vram, "--vram"),
            TargetEffectiveBatch = args.Int("target-batch", min: 1) ?? 32,
            MicroBatch = args.Int("micro-batch", min: 1),
            Precision = args.String("precision") is null ? null : ParsePrecision(args.Choice("precision", "bf16", "f32", "bf16", "bf16-pure")),
            Checkpointing = args.String("checkpointing") is null ? null : args.Choice("checkpointing", "off", "on", "off") == "on",
            Head = args.String("logprob") is null ? null : TokenLogProbs.ParseMode(args.Choice("logprob", "fused", "fused", "chunked", "naive")),
            Reference = args.String("ref-mode") is null ? null : args.Choice("ref-mode", "cached", "cached", "resident") == "cached" ? ReferenceMode.Cached : ReferenceMode.Resident,
            ReferenceFree = args.Flag("reference-free"),
            Bf16OptimizerStates = args.String("optimizer-state-dtype") is null ? null : args.Choice("optimizer-state-dtype", "f32", "f32", "bf16") == "bf16",
            CompletionFraction = args.Double("completion-fraction") ?? 1.0,
            Device = args.Choice("device", "cuda", "cuda", "cpu") == "cpu" ? MemoryDevice.Cpu : MemoryDevice.Cuda,
        };
    }

    static Precision ParsePrecision(string s) => s switch
    {
        "f32" => Precision.F32,
        "bf16" => Precision.Bf16Mixed,
        _ => Precision.Bf16Pure,
    };
}
