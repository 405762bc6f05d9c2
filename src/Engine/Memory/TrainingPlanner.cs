using Engine.Models;
using Engine.Training;

namespace Engine.Memory;

/// <summary>
/// <c>train --vram SIZE</c>: plans the run for a VRAM budget and fills in every step knob the user did not set
/// (micro-batch, precision, AdamW state dtype, checkpointing, head, reference mode) and the gradient accumulation.
/// </summary>
public static class TrainingPlanner
{
    public const int DefaultTargetBatch = 32;

    /// <param name="fixedKnobs">knobs the user set explicitly: kept as they are</param>
    /// <param name="accumulationFixed">the user set --grad-accum</param>
    /// <param name="targetBatch">pairs/rows per optimizer step; by default the user's micro-batch × accumulation when
    /// both are set, else <see cref="DefaultTargetBatch"/></param>
    public static (TrainingOptions Options, MemoryPlan Plan, string Summary) Apply(TrainingOptions o, LlamaConfig config, long budgetBytes,
        int? targetBatch, IReadOnlySet<PlanKnob> fixedKnobs, bool accumulationFixed)
    {
        bool batchFixed = fixedKnobs.Contains(PlanKnob.MicroBatch);
        var request = new PlanRequest
        {
            Config = config,
            Step = o.Step,
            BudgetBytes = budgetBytes,
            TargetEffectiveBatch = targetBatch ?? (batchFixed && accumulationFixed ? o.Step.MicroBatch * o.GradAccum : DefaultTargetBatch),
            Free = PlanRequest.AllKnobs.Except(fixedKnobs).ToHashSet(),
        };
        var plan = MemoryPlanner.Plan(request);
        if (!plan.Fits)
            throw new EngineException($"--vram {ByteSize.Format(budgetBytes)}: no configuration fits; the smallest " +
                $"({plan.Smallest.Settings.Describe()}) needs {ByteSize.Format(plan.Smallest.Estimate.PeakBytes)}, " +
                $"{ByteSize.Format(plan.Smallest.ShortBy)} more (see `engine plan`)");
        var c = plan.Chosen!;
        // An explicit accumulation with a planned micro-batch is kept; otherwise the plan's reaches the target.
        int accum = accumulationFixed && !batchFixed ? o.GradAccum : c.GradAccum;
        string summary = $"memory plan for {ByteSize.Format(budgetBytes)}: {c.Settings.Describe()}, grad accumulation {accum}; " +
                         $"predicted peak {ByteSize.Format(c.Estimate.PeakBytes)} ({c.Estimate.PeakPoint.Name})";
        return (o with { Step = c.Settings, GradAccum = accum }, plan, summary);
    }
}
