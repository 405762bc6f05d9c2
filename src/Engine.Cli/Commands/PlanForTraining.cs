using Engine.Kernels;
using Engine.Memory;
using Engine.Training;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>train --vram SIZE</c>: plans the run for that VRAM budget and fills in every memory knob the user did not
/// set explicitly (micro-batch, accumulation, precision, AdamW state dtype, checkpointing, head, reference mode).
/// </summary>
public static class PlanForTraining
{
    public static TrainingOptions Apply(CliArgs args, TrainingOptions o, TextWriter log)
    {
        var source = PlanModelSource.Resolve(o.ModelPath);
        int? target = args.Int("target-batch", min: 1);
        bool explicitBatch = args.Has("batch-size"), explicitAccum = args.Has("grad-accum");
        var request = new PlanRequest
        {
            Config = source.Config,
            Method = o.Method switch
            {
                "dpo" => PlanMethod.Dpo,
                "kto" => PlanMethod.Kto,
                _ => throw new EngineException($"--vram: memory planning covers dpo and kto (got '{o.Method}')"),
            },
            SeqLen = o.MaxLength,
            BudgetBytes = ByteSize.Parse(args.String("vram")!, "--vram"),
            TargetEffectiveBatch = target ?? (explicitBatch && explicitAccum ? o.BatchSize * o.GradAccum : 32),
            MicroBatch = explicitBatch ? o.BatchSize : null,
            Precision = args.Has("precision") ? o.Precision : null,
            Checkpointing = args.Has("checkpointing") ? o.ActivationCheckpointing : null,
            Head = args.Has("logprob") ? o.LogProb : null,
            Reference = args.Has("ref-mode") ? o.ReferenceMode : null,
            ReferenceFree = o.ReferenceFree,
            Bf16OptimizerStates = args.Has("optimizer-state-dtype") ? o.Bf16OptimizerStates : null,
        };
        var plan = MemoryPlanner.Plan(request);
        if (!plan.Fits)
            throw new EngineException($"--vram {ByteSize.Format(request.BudgetBytes)}: no configuration fits; the smallest " +
                $"({plan.Smallest.Settings.Describe()}) needs {ByteSize.Format(plan.Smallest.Estimate.PeakBytes)}, " +
                $"{ByteSize.Format(plan.Smallest.ShortBy)} more (see `engine plan`)");
        var c = plan.Chosen!;
        var s = c.Settings;
        int accum = explicitAccum && !explicitBatch ? o.GradAccum : c.GradAccum;
        log.WriteLine($"memory plan for {ByteSize.Format(request.BudgetBytes)}: {s.Describe()}, grad accumulation {accum}; " +
                      $"predicted peak {ByteSize.Format(c.Estimate.PeakBytes)} ({c.Estimate.PeakPoint.Name})");
        return o with
        {
            BatchSize = s.MicroBatch,
            GradAccum = accum,
            Precision = s.Precision,
            ActivationCheckpointing = s.ActivationCheckpointing,
            LogProb = s.Head,
            ReferenceMode = s.Reference,
            Bf16OptimizerStates = s.Bf16OptimizerStates,
        };
    }
}
