using Engine.Demo;
using Engine.Kernels;
using Engine.Training;

namespace Engine.Cli.Commands;

public sealed class DemoCommand : ICliCommand
{
    public string Name => "demo";
    public string Summary => "The main job: SFT from scratch, judge samples, align with KTO and DPO, report (runs/demo/report.md).";
    public string Usage => "demo [--model DIR] [--out runs/demo] [--seed S] [--align-steps N] [--sft-steps N] [--kto-lr LR] [--dpo-lr LR] [--beta B] [--precision f32|bf16] [--logprob fused|naive|chunked]";

    public int Run(CliArgs args)
    {
        var defaults = new DemoOptions();
        string? model = args.String("model");
        var options = new DemoOptions
        {
            ModelPath = model,
            OutputDir = args.String("out") ?? (model is null ? "runs/demo" : "runs/demo-" + Path.GetFileName(Path.GetFullPath(model).TrimEnd('/'))),
            Seed = args.Int("seed") ?? defaults.Seed,
            AlignSteps = args.Int("align-steps", min: 1) ?? defaults.AlignSteps,
            SftSteps = args.Int("sft-steps", min: 1) ?? defaults.SftSteps,
            Precision = args.Choice("precision", "f32", "f32", "bf16") == "bf16" ? Precision.Bf16Mixed : Precision.F32,
            LogProb = args.Choice("logprob", "fused", "fused", "naive", "chunked") switch { "naive" => LogProbMode.Naive, "chunked" => LogProbMode.Chunked, _ => LogProbMode.Fused },
        };
        double? ktoLr = args.Double("kto-lr"), dpoLr = args.Double("dpo-lr"), beta = args.Double("beta");
        args.EnsureAllUsed();
        options = options with
        {
            KtoLearningRate = ktoLr ?? options.KtoLearningRate,
            DpoLearningRate = dpoLr ?? options.DpoLearningRate,
            Beta = beta ?? options.Beta,
        };
        var result = new DemoPipeline(options, Console.Error.WriteLine, () => new ConsoleTrainingObserver()).Run();
        Console.WriteLine($"{"model",-6} {"desirable",10} {"rate",6} {"95% interval",16} {"KL to base",11} {"well-formed",12}");
        foreach (var j in result.Judgements)
            Console.WriteLine($"{j.Model,-6} {j.Desirable,5}/{j.Total,-4} {j.Rate,6:0.000} [{j.Low:0.000}, {j.High:0.000}] {j.KlToBase,11:0.000} {j.WellFormed,7}/{j.Total}");
        foreach (var (name, m) in result.HeldOut)
            Console.WriteLine($"{name,-6} held-out pairs: accuracy {m.GetValueOrDefault("rewards/accuracies"):0.000}, margin {m.GetValueOrDefault("rewards/margins"):0.000}");
        Console.WriteLine($"report: {result.ReportPath} ({result.Elapsed:mm\\:ss})");
        return 0;
    }
}
