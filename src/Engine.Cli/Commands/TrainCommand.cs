using Engine.Kernels;
using Engine.Training;

namespace Engine.Cli.Commands;

public sealed class TrainCommand : ICliCommand
{
    public string Name => "train";
    public string Summary => "Align or fine-tune a model: DPO, KTO, SFT, ORPO or SimPO.";
    public string Usage =>
        "train --method dpo|kto|sft|orpo|simpo --model DIR|FILE.gguf --data FILE --out DIR [--eval-data FILE | --eval-fraction F] " +
        "[--beta B] [--lr LR] [--batch-size N] [--grad-accum N] [--max-steps N] [--epochs N] [--lr-scheduler constant|linear|cosine] " +
        "[--warmup-steps N] [--save-steps N] [--eval-steps N] [--resume OUT|OUT/checkpoint-STEP] [--seed S] [--max-length N] " +
        "[--max-prompt-length N] [--truncation-mode keep_end|keep_start] [--desirable-weight W] [--undesirable-weight W] " +
        "[--loss-type T] [--label-smoothing E] [--rpo-alpha A] [--reference-free] [--no-z0] [--simpo-gamma G] [--ref DIR] " +
        "[--ref-mode cached|resident] [--logprob fused|naive|chunked] [--precision f32|bf16|bf16-pure] [--checkpointing on|off] " +
        "[--optimizer-state-dtype f32|bf16] [--weight-decay W] [--max-grad-norm N] [--max-nonfinite K] [--no-plots] [--config FILE.toml] " +
        "[--vram SIZE [--target-batch N]] (--vram: plan micro-batch, accumulation, precision, checkpointing, head and reference to fit, see `engine plan`)";

    public int Run(CliArgs args)
    {
        if (args.String("config") is string config) args.ApplyConfigFile(config);
        var options = Parse(args);
        if (args.String("vram") is not null) options = PlanForTraining.Apply(args, options, Console.Out);
        args.EnsureAllUsed();
        var observer = new ConsoleTrainingObserver();
        new AlignmentTrainer(options, observer).Run();
        return 0;
    }

    /// <summary>Reads every train option (shared with commands that run training, such as plan --measure).</summary>
    public static TrainingOptions Parse(CliArgs args) => new()
    {
        Method = args.Choice("method", "", "dpo", "kto", "sft", "orpo", "simpo") is { Length: > 0 } m ? m : throw new UsageException("train: --method is required"),
        ModelPath = args.RequiredString("model"),
        DataPath = args.RequiredString("data"),
        OutputDir = args.RequiredString("out"),
        EvalDataPath = args.String("eval-data"),
        EvalFraction = args.Double("eval-fraction") ?? 0,
        ReferenceModelPath = args.String("ref"),
        ReferenceMode = args.Choice("ref-mode", "cached", "cached", "resident") == "cached" ? ReferenceMode.Cached : ReferenceMode.Resident,
        Beta = args.Double("beta"),
        LearningRate = args.Double("lr"),
        LossType = args.String("loss-type"),
        LabelSmoothing = args.Double("label-smoothing") ?? 0,
        RpoAlpha = args.Double("rpo-alpha"),
        ReferenceFree = args.Flag("reference-free"),
        NoZ0 = args.Flag("no-z0"),
        SimpoGamma = args.Double("simpo-gamma"),
        DesirableWeight = args.Double("desirable-weight") ?? 1.0,
        UndesirableWeight = args.Double("undesirable-weight") ?? 1.0,
        BatchSize = args.Int("batch-size", min: 1) ?? 4,
        GradAccum = args.Int("grad-accum", min: 1) ?? 1,
        MaxSteps = args.Int("max-steps", min: 1),
        Epochs = args.Int("epochs", min: 1) ?? 1,
        LrScheduler = LearningRateSchedule.Parse(args.String("lr-scheduler") ?? "linear"),
        WarmupSteps = args.Int("warmup-steps", min: 0) ?? 0,
        WeightDecay = args.Double("weight-decay") ?? 0,
        MaxGradNorm = args.Double("max-grad-norm") ?? 1.0,
        SaveSteps = args.Int("save-steps", min: 0) ?? 0,
        EvalSteps = args.Int("eval-steps", min: 0) ?? 0,
        Seed = args.Long("seed") ?? 42,
        ResumeFrom = args.String("resume"),
        MaxLength = args.Int("max-length", min: 2) ?? 512,
        MaxPromptLength = args.Int("max-prompt-length", min: 1),
        TruncationMode = args.Choice("truncation-mode", "keep_end", "keep_end", "keep_start"),
        LogProb = args.Choice("logprob", "fused", "fused", "naive", "chunked") switch
        {
            "naive" => LogProbMode.Naive, "chunked" => LogProbMode.Chunked, _ => LogProbMode.Fused,
        },
        Precision = args.Choice("precision", "f32", "f32", "bf16", "bf16-pure") switch
        {
            "bf16" => Precision.Bf16Mixed, "bf16-pure" => Precision.Bf16Pure, _ => Precision.F32,
        },
        ActivationCheckpointing = args.Choice("checkpointing", "off", "on", "off") == "on",
        Bf16OptimizerStates = args.Choice("optimizer-state-dtype", "f32", "f32", "bf16") == "bf16",
        MaxConsecutiveNonFinite = args.Int("max-nonfinite", min: 1) ?? 5,
        Plots = !args.Flag("no-plots"),
    };
}
