using Engine.Cli.Options;
using Engine.Distributed;
using Engine.Memory;
using Engine.Methods;
using Engine.Training;

namespace Engine.Cli.Commands;

/// <summary>`train`'s settings: the run, plus the VRAM budget it may be planned for, and the local ranks to start.</summary>
public sealed record TrainArgs(TrainingOptions Run, string? Vram = null, int? TargetBatch = null, int Nproc = 1, int? ThreadsPerRank = null);

public sealed class TrainCommand : CliCommand<TrainArgs>
{
    public override string Name => "train";
    public override string Summary => "Align or fine-tune a model: DPO, KTO, SFT, ORPO or SimPO.";
    public override bool AcceptsConfig => true;
    protected override TrainArgs Defaults => new(new TrainingOptions());

    static CliOption<TrainArgs> Run(CliOption<TrainingOptions> o) => o.Lift<TrainArgs>(a => a.Run, (a, r) => a with { Run = r });
    static IEnumerable<CliOption<TrainArgs>> Step(IEnumerable<CliOption<StepSettings>> o) =>
        o.Lift<TrainArgs>(a => a.Run.Step, (a, s) => a with { Run = a.Run with { Step = s } });

    protected override IReadOnlyList<CliOption<TrainArgs>> Options { get; } = Step(StepOptions.All(AlignmentMethods.All))
        .Concat(new[]
        {
            Run(Opt<TrainingOptions>.String("data", "training data (.jsonl, .json, .parquet; TRL's formats)", o => o.DataPath, (o, v) => o with { DataPath = v },
                valueName: "FILE", required: true)),
            Run(Opt<TrainingOptions>.String("out", "output folder: metrics, checkpoints, final model", o => o.OutputDir, (o, v) => o with { OutputDir = v },
                valueName: "DIR", required: true)),
            Run(Opt<TrainingOptions>.String("eval-data", "evaluation data", o => o.EvalDataPath, (o, v) => o with { EvalDataPath = v }, valueName: "FILE")),
            Run(Opt<TrainingOptions>.Double("eval-fraction", "fraction of --data held out for eval when no --eval-data is given", o => o.EvalFraction,
                (o, v) => o with { EvalFraction = v }, valueName: "F")),
            Run(Opt<TrainingOptions>.OptionalDouble("lr", "AdamW learning rate (default: the method's; DPO 5e-7, KTO 5e-6)", o => o.LearningRate,
                (o, v) => o with { LearningRate = v }, valueName: "LR")),
            Run(Opt<TrainingOptions>.Int("grad-accum", "micro-batches per optimizer step (TRL's gradient_accumulation_steps)", o => o.GradAccum,
                (o, v) => o with { GradAccum = v }, min: 1)),
            Run(Opt<TrainingOptions>.OptionalInt("max-steps", "optimizer steps (overrides --epochs; the data repeats as needed)", o => o.MaxSteps,
                (o, v) => o with { MaxSteps = v }, min: 1)),
            Run(Opt<TrainingOptions>.Int("epochs", "passes over the data", o => o.Epochs, (o, v) => o with { Epochs = v }, min: 1)),
            Run(Opt<TrainingOptions>.Enum("lr-scheduler", "learning-rate schedule after the warm-up", o => o.LrScheduler, (o, v) => o with { LrScheduler = v })),
            Run(Opt<TrainingOptions>.Int("warmup-steps", "linear warm-up steps", o => o.WarmupSteps, (o, v) => o with { WarmupSteps = v }, min: 0)),
            Run(Opt<TrainingOptions>.Double("weight-decay", "AdamW's decoupled weight decay (not on norms)", o => o.WeightDecay, (o, v) => o with { WeightDecay = v }, valueName: "W")),
            Run(Opt<TrainingOptions>.Double("max-grad-norm", "gradient clipping norm", o => o.MaxGradNorm, (o, v) => o with { MaxGradNorm = v })),
            Run(Opt<TrainingOptions>.Int("save-steps", "write a checkpoint every N steps (0: none)", o => o.SaveSteps, (o, v) => o with { SaveSteps = v }, min: 0)),
            Run(Opt<TrainingOptions>.Int("eval-steps", "evaluate every N steps (0: at the end only)", o => o.EvalSteps, (o, v) => o with { EvalSteps = v }, min: 0)),
            Run(Opt<TrainingOptions>.Int("logging-steps", "one metrics row per N steps, averaged as TRL logs them (TRL's logging_steps; 1: every step)",
                o => o.LoggingSteps, (o, v) => o with { LoggingSteps = v }, min: 1)),
            Run(Opt<TrainingOptions>.Enum("report-to", "also log the metrics to TensorBoard in OUT/runs (TRL's report_to)", o => o.ReportTo, (o, v) => o with { ReportTo = v })),
            Run(Opt<TrainingOptions>.OptionalInt("save-total-limit", "keep at most N checkpoints, deleting the oldest (HF's save_total_limit; default: all)",
                o => o.SaveTotalLimit, (o, v) => o with { SaveTotalLimit = v }, min: 1)),
            Run(Opt<TrainingOptions>.String("metric-for-best-model", "eval metric whose best checkpoint --save-total-limit always keeps (HF's metric_for_best_model)",
                o => o.MetricForBestModel, (o, v) => o with { MetricForBestModel = v }, valueName: "NAME", sample: "loss")),
            Run(Opt<TrainingOptions>.Flag("greater-is-better", "a higher --metric-for-best-model is better (default: unless its name ends in loss)",
                o => o.GreaterIsBetter == true, (o, v) => o with { GreaterIsBetter = v })),
            Run(Opt<TrainingOptions>.Flag("overwrite-output-dir", "replace a previous run in --out (only the files a run writes there are removed)",
                o => o.OverwriteOutputDir, (o, v) => o with { OverwriteOutputDir = v })),
            Run(Opt<TrainingOptions>.Long("seed", "seed of the data order and any random initialisation", o => o.Seed, (o, v) => o with { Seed = v }, valueName: "S")),
            Run(Opt<TrainingOptions>.String("resume", "continue a run from its newest checkpoint (or a given checkpoint folder)", o => o.ResumeFrom,
                (o, v) => o with { ResumeFrom = v }, valueName: "OUT|OUT/checkpoint-STEP")),
            Run(Opt<TrainingOptions>.Int("max-nonfinite", "stop after K consecutive steps with a non-finite loss or gradient", o => o.MaxConsecutiveNonFinite,
                (o, v) => o with { MaxConsecutiveNonFinite = v }, min: 1, valueName: "K")),
            Run(Opt<TrainingOptions>.Flag("no-plots", "do not write PNG plots of the metrics", o => !o.Plots, (o, v) => o with { Plots = !v })),
            Run(Opt<TrainingOptions>.Flag("profile", "split the training steps' time by op class (matmul, attention, norm, activation, rope, head, " +
                "optimizer, conversion, other) and print ms per step at the end", o => o.Profile, (o, v) => o with { Profile = v })),
            Opt<TrainArgs>.Int("nproc", "data-parallel ranks on this machine, started through Open MPI's mpirun (or start them yourself: mpirun -np N engine train ...); " +
                "--batch-size is per rank", a => a.Nproc, (a, v) => a with { Nproc = v }, min: 1),
            Opt<TrainArgs>.OptionalInt("threads-per-rank", "with --nproc: torch threads of each rank (default: the cores shared out)", a => a.ThreadsPerRank,
                (a, v) => a with { ThreadsPerRank = v }, min: 1),
            Run(Opt<TrainingOptions>.Double("ddp-bucket-cap-mb", "data-parallel runs: MiB of fp32 gradients per all-reduce bucket (HF's ddp_bucket_cap_mb)",
                o => o.DdpBucketCapMb, (o, v) => o with { DdpBucketCapMb = v }, valueName: "MB")),
            Opt<TrainArgs>.String("vram", "plan micro-batch, accumulation, precision, checkpointing, head and reference to fit this budget (see `engine plan`)",
                a => a.Vram, (a, v) => a with { Vram = v }, valueName: "SIZE", sample: "8GiB"),
            Opt<TrainArgs>.OptionalInt("target-batch", $"with --vram: pairs/rows per optimizer step (default: --batch-size × --grad-accum when both are given, else {TrainingPlanner.DefaultTargetBatch})",
                a => a.TargetBatch, (a, v) => a with { TargetBatch = v }, min: 1),
        }).ToList();

    protected override int Execute(Parsed<TrainArgs> parsed, CliContext context)
    {
        var (options, vram, target, nproc, threads) = parsed.Value;
        int launched = Launch.RanksFromEnvironment();
        if (nproc > 1 && launched == 1)
            return LocalMpiJob.Run(nproc, LocalMpiJob.WithoutOption(parsed.Args, "nproc").Prepend(Name), threads, context, options.OutputDir);
        if (parsed.Given.Contains("nproc") && launched > 1 && nproc != launched)
            throw new UsageException($"train: --nproc {nproc} inside a job its launcher started with {launched} ranks (drop --nproc under mpirun)");
        if (target is not null && vram is null) throw new UsageException("train: --target-batch goes with --vram");
        if (vram is not null)
        {
            var source = PlanModelSource.Resolve(options.Step.Model);
            string summary;
            (options, _, summary) = TrainingPlanner.Apply(options, source.Config, ByteSize.Parse(vram, "--vram"), target,
                StepOptions.FixedKnobs(parsed.Given), accumulationFixed: parsed.Given.Contains("grad-accum"));
            context.Out.WriteLine(summary);
        }
        using var ranks = Launch.Communicator();
        var observer = new ConsoleTrainingObserver(context);
        // Under mpirun every rank gets the launcher's signals; only rank 0 says so.
        using var stop = StopSignal.ListenToProcess(ranks.IsRoot ? observer.Notice : _ => { }, options.OutputDir);
        try
        {
            new AlignmentTrainer(options, observer, stop, ranks).Run();
        }
        catch (TrainingStoppedException e) when (!ranks.IsRoot)
        {
            // Every rank stops at the same step; rank 0 alone says so (the launcher relays one message, not N).
            // No MPI_Finalize, as after any failure: the launcher ends the job.
            (ranks as MpiCommunicator)?.Fail();
            return StopSignal.ExitCodeFor(e.Signal);
        }
        catch when (ranks is MpiCommunicator mpi)
        {
            // MPI_Finalize would wait for ranks that may never get there: exit without it, and the launcher ends the job.
            mpi.Fail();
            throw;
        }
        return 0;
    }
}
