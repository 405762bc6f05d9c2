using System.Text.Json;
using Engine.Cli.Options;
using Engine.Memory;
using Engine.Methods;
using Engine.Training;

namespace Engine.Cli.Commands;

public sealed record PlanArgs(StepSettings Step, string Vram = "", int TargetBatch = TrainingPlanner.DefaultTargetBatch,
    double CompletionFraction = 1.0, MemoryDevice Device = MemoryDevice.Cuda, bool Json = false, bool Measure = false, int Repeats = 3);

public sealed class PlanCommand : CliCommand<PlanArgs>
{
    public override string Name => "plan";
    public override string Summary => "Will a training run fit in VRAM, and with what micro-batch? Predicts the step's memory and picks the fastest settings that fit.";
    protected override PlanArgs Defaults => new(new StepSettings());

    static IEnumerable<CliOption<PlanArgs>> Step(IEnumerable<CliOption<StepSettings>> o) => o.Lift<PlanArgs>(a => a.Step, (a, s) => a with { Step = s });

    protected override IReadOnlyList<CliOption<PlanArgs>> Options { get; } =
        Step(StepOptions.All(AlignmentMethods.All).Select(o => o.Name switch
        {
            "model" => o.With(help: $"a model folder, GGUF file or preset ({string.Join(", ", Models.ModelPresets.All.Keys)})"),
            "max-length" => o.With(help: "sequence length to plan for (prompt + completion, in tokens)", required: true),
            "batch-size" => o.With(help: "fix the micro-batch (pairs or rows) instead of letting the planner choose"),
            _ => o,
        }))
        .Concat(new[]
        {
            Opt<PlanArgs>.String("vram", "the memory budget, e.g. 8GiB", a => a.Vram, (a, v) => a with { Vram = v }, valueName: "SIZE", required: true, sample: "8GiB"),
            Opt<PlanArgs>.Int("target-batch", "pairs/rows per optimizer step (micro-batch × accumulation)", a => a.TargetBatch, (a, v) => a with { TargetBatch = v }, min: 1),
            Opt<PlanArgs>.Double("completion-fraction", "share of each sequence that is completion (goes through the head); 1 is the worst case",
                a => a.CompletionFraction, (a, v) => a with { CompletionFraction = v }, valueName: "F"),
            Opt<PlanArgs>.Enum("device", "plan for a CUDA GPU or for this CPU", a => a.Device, (a, v) => a with { Device = v }),
            Opt<PlanArgs>.Flag("json", "print the plan as JSON", a => a.Json, (a, v) => a with { Json = v }),
            Opt<PlanArgs>.Flag("measure", "also run the planned step on the CPU and measure its memory", a => a.Measure, (a, v) => a with { Measure = v }),
            Opt<PlanArgs>.Int("repeats", "with --measure: measured steps after two warm-up steps", a => a.Repeats, (a, v) => a with { Repeats = v }, min: 1),
        }).ToList();

    protected override int Execute(Parsed<PlanArgs> parsed, CliContext context)
    {
        var a = parsed.Value;
        var source = PlanModelSource.Resolve(a.Step.Model);
        var request = new PlanRequest
        {
            Config = source.Config, Step = a.Step, BudgetBytes = ByteSize.Parse(a.Vram, "--vram"), TargetEffectiveBatch = a.TargetBatch,
            Device = a.Device, CompletionFraction = a.CompletionFraction,
            Free = PlanRequest.AllKnobs.Except(StepOptions.FixedKnobs(parsed.Given)).ToHashSet(),
        };
        var plan = MemoryPlanner.Plan(request);
        var report = PlanReport.ToJson(source.Name, plan);
        StepMeasurementResult? measured = null;
        MemoryEstimate? cpuEstimate = null;
        if (a.Measure)
        {
            var planned = plan.Shown.Planned with { Device = MemoryDevice.Cpu };
            cpuEstimate = new StepMemoryModel(source.Config, planned).Estimate();
            long available = ProcessMemory.AvailableBytes();
            if (cpuEstimate.PeakBytes > available / 2)
                throw new EngineException($"--measure: the step needs about {ByteSize.Format(cpuEstimate.PeakBytes)} here and only {ByteSize.Format(available)} is available; " +
                    "measure a smaller configuration (--batch-size, --max-length)");
            if (!a.Json) context.Err.WriteLine($"measuring {a.Repeats} step(s) on the CPU: {planned.Describe()} ...");
            measured = StepMeasurement.Run(source.Config, planned, a.Repeats);
            report["measured"] = PlanReport.MeasurementJson(cpuEstimate, measured);
            report["measured_peak_bytes"] = measured.PeakBytes;
        }
        if (a.Json) context.Out.WriteLine(JsonSerializer.Serialize(report));
        else
        {
            PlanReport.WriteText(context.Out, source.Name, plan);
            if (measured != null) PlanReport.WriteMeasurement(context.Out, cpuEstimate!, measured);
        }
        return 0;
    }
}
