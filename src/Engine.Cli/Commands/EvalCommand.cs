using System.Globalization;
using System.Text.Json;
using Engine.Cli.Options;
using Engine.Objectives;
using Engine.Training;

namespace Engine.Cli.Commands;

public sealed record EvalArgs(EvaluationOptions Eval, bool Json = false);

public sealed class EvalCommand : CliCommand<EvalArgs>
{
    public override string Name => "eval";
    public override string Summary => "Score a model against a reference on preference data (the seed paper's Table 1 columns).";
    protected override EvalArgs Defaults => new(new EvaluationOptions());

    static IEnumerable<CliOption<EvalArgs>> Step(IEnumerable<CliOption<StepSettings>> o) =>
        o.Lift<EvalArgs>(a => a.Eval.Step, (a, s) => a with { Eval = a.Eval with { Step = s } });

    protected override IReadOnlyList<CliOption<EvalArgs>> Options { get; } =
        Step(new[]
        {
            StepOptions.Method(ModelEvaluation.Methods), StepOptions.Model, StepOptions.Reference.With(help: "the reference model (required unless --reference-free)"),
            StepOptions.MicroBatch, StepOptions.Head, StepOptions.Kernels, StepOptions.Precision,
        }.Concat(StepOptions.Lengths).Concat(new[]
        {
            StepOptions.Beta, StepOptions.LossType, StepOptions.LabelSmoothing, StepOptions.ReferenceFree, StepOptions.NoZ0,
            StepOptions.DesirableWeight, StepOptions.UndesirableWeight,
        }))
        .Concat(new[]
        {
            Opt<EvalArgs>.String("data", "preference data to score", a => a.Eval.DataPath, (a, v) => a with { Eval = a.Eval with { DataPath = v } },
                valueName: "FILE", required: true),
            Opt<EvalArgs>.String("adapter", "a PEFT LoRA adapter folder applied to --model; without --ref the reference is the base model",
                a => a.Eval.Adapter, (a, v) => a with { Eval = a.Eval with { Adapter = v } }, valueName: "DIR"),
            Opt<EvalArgs>.Flag("json", "print the metrics as one JSON object", a => a.Json, (a, v) => a with { Json = v }),
        }).ToList();

    protected override int Execute(Parsed<EvalArgs> parsed, CliContext context)
    {
        var metrics = ModelEvaluation.Run(parsed.Value.Eval);
        var w = context.Out;
        if (parsed.Value.Json)
        {
            w.WriteLine(JsonSerializer.Serialize(metrics.ToDictionary(kv => kv.Key, kv => double.IsFinite(kv.Value) ? (object)kv.Value : kv.Value.ToString(CultureInfo.InvariantCulture))));
            return 0;
        }
        // A metric the method does not define prints as "-".
        string V(string name) => metrics.TryGetValue(name, out var v) ? (double.IsFinite(v) ? v.ToString("0.0000", CultureInfo.InvariantCulture) : $"{v} (non-finite!)") : "-";
        w.WriteLine(string.Join(" | ", MetricNames.TableOne.Select(c => c.Header.PadLeft(11))));
        w.WriteLine(string.Join(" | ", MetricNames.TableOne.Select(c => V(c.Metric).PadLeft(11))));
        if (metrics.ContainsKey(MetricNames.Kl)) w.WriteLine($"kl (z0): {V(MetricNames.Kl)}");
        return 0;
    }
}
