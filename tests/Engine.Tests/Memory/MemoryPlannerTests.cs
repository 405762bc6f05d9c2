using Engine.Kernels;
using Engine.Memory;
using Engine.Methods;
using Engine.Models;
using Engine.Training;

namespace Engine.Tests.Memory;

public class MemoryPlannerTests
{
    static PlanRequest Minerva(AlignmentMethod method, long budget = 8L << 30) => new()
    {
        Config = ModelPresets.Get("minerva-350m"), Step = new StepSettings { Method = method, Model = "minerva-350m", MaxLength = 1024 },
        BudgetBytes = budget, TargetEffectiveBatch = 32,
    };

    /// <summary>The request with <paramref name="step"/>'s knobs fixed to the given values.</summary>
    static PlanRequest Fixed(PlanRequest r, Func<StepSettings, StepSettings> step, params PlanKnob[] knobs) =>
        r with { Step = step(r.Step), Free = PlanRequest.AllKnobs.Except(knobs).ToHashSet() };

    [Fact]
    public void MinervaDpoFitsAtLeastEightPairsIn8GiB()
    {
        var plan = MemoryPlanner.Plan(Minerva(AlignmentMethods.Dpo));
        Assert.True(plan.Fits);
        Assert.True(plan.Chosen!.Settings.MicroBatch >= 8, plan.Chosen.Settings.Describe());
        Assert.True(plan.Chosen.Estimate.PeakBytes <= 8L << 30);
        Assert.Equal(32, plan.Chosen.EffectiveBatch);
    }

    [Fact]
    public void MinervaKtoFitsAtLeastSixteenRowsIn8GiB()
    {
        var plan = MemoryPlanner.Plan(Minerva(AlignmentMethods.Kto));
        Assert.True(plan.Fits);
        Assert.True(plan.Chosen!.Settings.MicroBatch >= 16, plan.Chosen.Settings.Describe());
    }

    [Fact]
    public void ATrlStyleStepFitsAboutOnePair()
    {
        // fp32 masters and AdamW states, a resident reference, full fp32 logits, with checkpointing.
        var plan = MemoryPlanner.Plan(Fixed(Minerva(AlignmentMethods.Dpo), s => s with
        {
            Precision = Precision.Bf16Mixed, Bf16OptimizerStates = false, Reference = ReferenceMode.Resident, Head = LogProbMode.Naive, ActivationCheckpointing = true,
        }, PlanKnob.Precision, PlanKnob.OptimizerStates, PlanKnob.Reference, PlanKnob.Head, PlanKnob.Checkpointing));
        Assert.True(plan.Fits);
        Assert.InRange(plan.Chosen!.Settings.MicroBatch, 1, 2);
    }

    [Fact]
    public void ATooSmallBudgetReportsTheExactShortfallOfTheSmallestConfiguration()
    {
        long budget = 2L << 30;
        // The optimizer update is the peak at the smallest micro-batches, so they need about the same (the larger batch
        // tensors count as static, which lowers the fragmentation allowance by a few KB): the smallest configuration is
        // checked to need no more than micro-batch 1. The fused kernels save less per layer: checked to need no more.
        var torchRequest = Minerva(AlignmentMethods.Dpo, budget);
        torchRequest = torchRequest with { Step = torchRequest.Step with { Kernels = KernelChoice.Torch } };
        var plan = MemoryPlanner.Plan(torchRequest);
        var fused = MemoryPlanner.Plan(Minerva(AlignmentMethods.Dpo, budget));
        Assert.True(fused.Smallest.Estimate.PeakBytes <= plan.Smallest.Estimate.PeakBytes);
        Assert.False(plan.Fits);
        var s = plan.Smallest.Settings;
        var one = MemoryPlanner.Evaluate(torchRequest, s with { MicroBatch = 1 });
        Assert.True(plan.Smallest.Estimate.PeakBytes <= one.Estimate.PeakBytes);
        Assert.Equal("optimizer update", plan.Smallest.Estimate.PeakPoint.Name);
        Assert.Equal(Precision.Bf16Pure, s.Precision);
        Assert.True(s.Bf16OptimizerStates && s.ActivationCheckpointing);
        Assert.Equal(ReferenceMode.Cached, s.Reference);
        // weights + gradients + moments alone: 351,573,120 × (2 + 2 + 4) bytes
        Assert.True(plan.Smallest.Estimate.PeakBytes > 351_573_120L * 8);
        Assert.Equal(plan.Smallest.Estimate.PeakBytes - budget, plan.Smallest.ShortBy);
        Assert.All(plan.Alternatives, a => Assert.False(a.Candidate.Fits && a.Candidate.Estimate.PeakBytes < plan.Smallest.Estimate.PeakBytes));
    }

    [Fact]
    public void FixedKnobsAreKept()
    {
        var plan = MemoryPlanner.Plan(Fixed(Minerva(AlignmentMethods.Kto, 24L << 30),
            s => s with { MicroBatch = 4, Precision = Precision.F32, ActivationCheckpointing = false, Head = LogProbMode.Naive },
            PlanKnob.MicroBatch, PlanKnob.Precision, PlanKnob.Checkpointing, PlanKnob.Head));
        var s = plan.Shown.Settings;
        Assert.Equal(4, s.MicroBatch);
        Assert.Equal(Precision.F32, s.Precision);
        Assert.False(s.ActivationCheckpointing);
        Assert.Equal(LogProbMode.Naive, s.Head);
        Assert.Equal(8, plan.Shown.GradAccum);
    }

    [Fact]
    public void MorePeakMemoryNeverWinsWhenItIsNotFaster()
    {
        var plan = MemoryPlanner.Plan(Minerva(AlignmentMethods.Dpo));
        var resident = plan.Alternatives.Single(a => a.Change.Contains("resident")).Candidate;
        Assert.Equal(ReferenceMode.Cached, plan.Chosen!.Settings.Reference);
        Assert.True(resident.Estimate.PeakBytes > plan.Chosen.Estimate.PeakBytes);
    }

    [Fact]
    public void KtoRejectsAMicroBatchOfOne()
    {
        var e = Assert.Throws<EngineException>(() => MemoryPlanner.Plan(Fixed(Minerva(AlignmentMethods.Kto), s => s with { MicroBatch = 1 }, PlanKnob.MicroBatch)));
        Assert.Contains("at least 2", e.Message);
    }
}
