using Engine.Demo;
using Engine.Cli.Options;
using Engine.Training;

namespace Engine.Cli.Commands;

public sealed record DemoArgs(DemoOptions Demo, string? Out = null);

public sealed class DemoCommand : CliCommand<DemoArgs>
{
    public override string Name => "demo";
    public override string Summary => "The main job: SFT from scratch, judge samples, align with KTO and DPO, report (runs/demo/report.md).";
    protected override DemoArgs Defaults => new(new DemoOptions());

    static CliOption<DemoArgs> D(CliOption<DemoOptions> o) => o.Lift<DemoArgs>(a => a.Demo, (a, d) => a with { Demo = d });

    protected override IReadOnlyList<CliOption<DemoArgs>> Options { get; } = new[]
    {
        D(Opt<DemoOptions>.String("model", "align this pretrained model instead of training one from scratch", o => o.ModelPath, (o, v) => o with { ModelPath = v }, valueName: "DIR")),
        Opt<DemoArgs>.String("out", "output folder: new, empty, or an earlier demo run (default: runs/demo, or runs/demo-MODEL)", a => a.Out, (a, v) => a with { Out = v }, valueName: "DIR"),
        D(Opt<DemoOptions>.Int("seed", "seed of everything", o => o.Seed, (o, v) => o with { Seed = v })),
        D(Opt<DemoOptions>.Int("align-steps", "KTO and DPO steps", o => o.AlignSteps, (o, v) => o with { AlignSteps = v }, min: 1)),
        D(Opt<DemoOptions>.Int("sft-steps", "SFT steps of the from-scratch model", o => o.SftSteps, (o, v) => o with { SftSteps = v }, min: 1)),
        D(Opt<DemoOptions>.Double("kto-lr", "KTO learning rate", o => o.KtoLearningRate, (o, v) => o with { KtoLearningRate = v }, valueName: "LR")),
        D(Opt<DemoOptions>.Double("dpo-lr", "DPO learning rate", o => o.DpoLearningRate, (o, v) => o with { DpoLearningRate = v }, valueName: "LR")),
        D(Opt<DemoOptions>.Double("beta", "β of KTO and DPO", o => o.Beta, (o, v) => o with { Beta = v }, valueName: "B")),
        D(Opt<DemoOptions>.Enum("precision", "compute precision", o => o.Precision, (o, v) => o with { Precision = v })),
        D(Opt<DemoOptions>.Enum("logprob", "how per-token log-probs are computed", o => o.LogProb, (o, v) => o with { LogProb = v })),
    };

    protected override int Execute(Parsed<DemoArgs> parsed, CliContext context)
    {
        var (options, outDir) = parsed.Value;
        string? model = options.ModelPath;
        options = options with
        {
            OutputDir = outDir ?? (model is null ? "runs/demo" : "runs/demo-" + Path.GetFileName(Path.GetFullPath(model).TrimEnd('/'))),
        };
        var w = context.Out;
        var result = new DemoPipeline(options, context.Err.WriteLine, () => new ConsoleTrainingObserver(context)).Run();
        w.WriteLine($"{"model",-6} {"desirable",10} {"rate",6} {"95% interval",16} {"KL to base",11} {"well-formed",12}");
        foreach (var j in result.Judgements)
            w.WriteLine($"{j.Model,-6} {j.Desirable,5}/{j.Total,-4} {j.Rate,6:0.000} [{j.Low:0.000}, {j.High:0.000}] {j.KlToBase,11:0.000} {j.WellFormed,7}/{j.Total}");
        foreach (var (name, m) in result.HeldOut)
            w.WriteLine($"{name,-6} held-out pairs: accuracy {m.GetValueOrDefault("rewards/accuracies"):0.000}, margin {m.GetValueOrDefault("rewards/margins"):0.000}");
        w.WriteLine($"report: {result.ReportPath} ({result.Elapsed:mm\\:ss})");
        return 0;
    }
}
