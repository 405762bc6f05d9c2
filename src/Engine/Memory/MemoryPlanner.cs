using Engine.Kernels;
using Engine.Models;
using Engine.Training;
using Engine.Util;

namespace Engine.Memory;

/// <summary>The step settings the planner may choose; the others keep the request's values.</summary>
public enum PlanKnob { MicroBatch, Precision, OptimizerStates, Checkpointing, Head, Reference }

/// <summary>What to plan for: the step (its method, lengths and any knob the user fixed) and the budget.</summary>
public sealed record PlanRequest
{
    public required LlamaConfig Config { get; init; }
    /// <summary>The step; knobs in <see cref="Free"/> are the planner's to change.</summary>
    public required StepSettings Step { get; init; }
    public required long BudgetBytes { get; init; }
    /// <summary>Pairs or rows per optimizer step; micro-batch × accumulation reaches it.</summary>
    public int TargetEffectiveBatch { get; init; } = 32;
    public MemoryDevice Device { get; init; } = MemoryDevice.Cuda;
    public double CompletionFraction { get; init; } = 1.0;
    public IReadOnlySet<PlanKnob> Free { get; init; } = AllKnobs;

    public static readonly IReadOnlySet<PlanKnob> AllKnobs = Enum.GetValues<PlanKnob>().ToHashSet();

    public PlannedStep Planned(StepSettings s) => new(s, Device, CompletionFraction);
}

/// <summary>One configuration the planner considered.</summary>
public sealed record PlanCandidate(PlannedStep Planned, MemoryEstimate Estimate, int GradAccum, double Throughput, double Score, long BudgetBytes)
{
    public StepSettings Settings => Planned.Step;
    public bool Fits => Estimate.PeakBytes <= BudgetBytes;
    /// <summary>Bytes missing from the budget (0 when it fits).</summary>
    public long ShortBy => Math.Max(0, Estimate.PeakBytes - BudgetBytes);
    public int EffectiveBatch => Settings.MicroBatch * GradAccum;
}

/// <summary>A single-knob change of the chosen plan and what it would cost.</summary>
public sealed record PlanAlternative(string Change, PlanCandidate Candidate);

public sealed record MemoryPlan(PlanRequest Request, long Parameters, PlanCandidate? Chosen, PlanCandidate Smallest,
    IReadOnlyList<PlanAlternative> Alternatives, int CandidatesConsidered)
{
    public bool Fits => Chosen is not null;
    /// <summary>The configuration shown: the choice, or the least-memory one when nothing fits.</summary>
    public PlanCandidate Shown => Chosen ?? Smallest;
}

/// <summary>
/// Searches micro-batch (a divisor of the target effective batch), precision, AdamW state dtype, activation
/// checkpointing, head mode and reference handling — whichever the request leaves free — for the configuration that
/// fits the budget with the most estimated throughput (<see cref="ThroughputModel"/>). Ties go to less memory.
/// </summary>
public static class MemoryPlanner
{
    public static MemoryPlan Plan(PlanRequest r)
    {
        var step = r.Step;
        if (step.MaxLength < 2) throw new EngineException($"--seq-len must be at least 2 (got {step.MaxLength})");
        if (r.TargetEffectiveBatch < 1) throw new EngineException($"--target-batch must be at least 1 (got {r.TargetEffectiveBatch})");
        int minMb = step.Method.MinMicroBatch;
        bool freeBatch = r.Free.Contains(PlanKnob.MicroBatch);
        if (!freeBatch) step.Validate();
        var microBatches = !freeBatch
            ? new[] { step.MicroBatch }
            : Enumerable.Range(minMb, Math.Max(0, r.TargetEffectiveBatch - minMb + 1)).Where(m => r.TargetEffectiveBatch % m == 0).ToArray();
        if (microBatches.Length == 0) microBatches = new[] { minMb };

        var candidates = Enumerate(r, microBatches).Select(s => Evaluate(r, s)).ToList();
        var chosen = candidates.Where(c => c.Fits).OrderByDescending(c => c.Score).ThenBy(c => c.Estimate.PeakBytes).FirstOrDefault();
        var smallest = candidates.OrderBy(c => c.Estimate.PeakBytes).ThenByDescending(c => c.Score).First();
        return new MemoryPlan(r, r.Config.ParameterCount(), chosen, smallest, Alternatives(r, chosen ?? smallest), candidates.Count);
    }

    public static PlanCandidate Evaluate(PlanRequest r, StepSettings s)
    {
        var planned = r.Planned(s);
        var estimate = new StepMemoryModel(r.Config, planned).Estimate();
        int accum = (r.TargetEffectiveBatch + s.MicroBatch - 1) / s.MicroBatch;
        double throughput = ThroughputModel.TokensPerSecond(r.Config, planned);
        return new PlanCandidate(planned, estimate, accum, throughput, throughput * ThroughputModel.Preference(planned), r.BudgetBytes);
    }

    static T[] Choices<T>(PlanRequest r, PlanKnob knob, T current, params T[] all) => r.Free.Contains(knob) ? all : new[] { current };

    static IEnumerable<StepSettings> Enumerate(PlanRequest r, int[] microBatches)
    {
        var s0 = r.Step;
        var precisions = Choices(r, PlanKnob.Precision, s0.Precision, Precision.Bf16Mixed, Precision.F32, Precision.Bf16Pure);
        var states = Choices(r, PlanKnob.OptimizerStates, s0.Bf16OptimizerStates, false, true);
        var checkpointing = Choices(r, PlanKnob.Checkpointing, s0.ActivationCheckpointing, false, true);
        var heads = Choices(r, PlanKnob.Head, s0.Head, LogProbMode.Fused, LogProbMode.Chunked, LogProbMode.Naive);
        var references = !s0.UsesReference ? new[] { s0.Reference } : Choices(r, PlanKnob.Reference, s0.Reference, ReferenceMode.Cached, ReferenceMode.Resident);
        foreach (int mb in microBatches)
        foreach (var precision in precisions)
        foreach (bool bf16States in states)
        foreach (bool ckpt in checkpointing)
        foreach (var head in heads)
        foreach (var reference in references)
            yield return s0 with
            {
                MicroBatch = mb, Precision = precision, Bf16OptimizerStates = bf16States, ActivationCheckpointing = ckpt, Head = head, Reference = reference,
            };
    }

    /// <summary>The shown plan with one knob changed at a time, so the output says what each option would cost.</summary>
    static IReadOnlyList<PlanAlternative> Alternatives(PlanRequest r, PlanCandidate basis)
    {
        var s = basis.Settings;
        var list = new List<(string, StepSettings)>();
        int minMb = s.Method.MinMicroBatch;
        int? larger = Enumerable.Range(s.MicroBatch + 1, Math.Max(0, r.TargetEffectiveBatch - s.MicroBatch))
            .Where(m => r.TargetEffectiveBatch % m == 0).Select(m => (int?)m).FirstOrDefault();
        if (r.Free.Contains(PlanKnob.MicroBatch))
        {
            if (larger is int up) list.Add(($"micro-batch {up}", s with { MicroBatch = up }));
            if (s.MicroBatch > minMb)
            {
                int down = Enumerable.Range(minMb, s.MicroBatch - minMb).Where(m => r.TargetEffectiveBatch % m == 0).DefaultIfEmpty(minMb).Max();
                list.Add(($"micro-batch {down}", s with { MicroBatch = down }));
            }
        }
        list.Add(($"checkpointing {(s.ActivationCheckpointing ? "off" : "on")}", s with { ActivationCheckpointing = !s.ActivationCheckpointing }));
        foreach (var p in new[] { Precision.F32, Precision.Bf16Mixed, Precision.Bf16Pure }.Where(p => p != s.Precision))
            list.Add(($"precision {Spelling.Of(p)}", s with { Precision = p }));
        list.Add(($"{(s.Bf16OptimizerStates ? "fp32" : "bf16")} Adam states", s with { Bf16OptimizerStates = !s.Bf16OptimizerStates }));
        foreach (var h in new[] { LogProbMode.Fused, LogProbMode.Chunked, LogProbMode.Naive }.Where(h => h != s.Head))
            list.Add(($"{Spelling.Of(h)} head", s with { Head = h }));
        if (s.UsesReference)
        {
            var other = s.Reference == ReferenceMode.Cached ? ReferenceMode.Resident : ReferenceMode.Cached;
            list.Add(($"{(other == ReferenceMode.Cached ? "cached reference log-probs" : "resident reference model")}", s with { Reference = other }));
        }
        return list.Select(x => new PlanAlternative(x.Item1, Evaluate(r, x.Item2))).ToList();
    }
}
