using Engine.Kernels;
using Engine.Models;
using Engine.Training;

namespace Engine.Memory;

/// <summary>What to plan for; a null knob is the planner's to choose.</summary>
public sealed record PlanRequest
{
    public required LlamaConfig Config { get; init; }
    public required PlanMethod Method { get; init; }
    public required int SeqLen { get; init; }
    public required long BudgetBytes { get; init; }
    /// <summary>Pairs (DPO) or rows (KTO) per optimizer step; micro-batch × accumulation reaches it.</summary>
    public int TargetEffectiveBatch { get; init; } = 32;
    public MemoryDevice Device { get; init; } = MemoryDevice.Cuda;
    public bool ReferenceFree { get; init; }
    public double CompletionFraction { get; init; } = 1.0;
    public int? MicroBatch { get; init; }
    public Precision? Precision { get; init; }
    public bool? Checkpointing { get; init; }
    public LogProbMode? Head { get; init; }
    public ReferenceMode? Reference { get; init; }
    public bool? Bf16OptimizerStates { get; init; }
}

/// <summary>One configuration the planner considered.</summary>
public sealed record PlanCandidate(StepSettings Settings, MemoryEstimate Estimate, int GradAccum, double Throughput, double Score, long BudgetBytes)
{
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
/// checkpointing, head mode and reference handling for the configuration that fits the budget with the most
/// estimated throughput (<see cref="ThroughputModel"/>). Ties go to less memory.
/// </summary>
public static class MemoryPlanner
{
    public static MemoryPlan Plan(PlanRequest r)
    {
        if (r.SeqLen < 2) throw new EngineException($"--seq-len must be at least 2 (got {r.SeqLen})");
        if (r.TargetEffectiveBatch < 1) throw new EngineException($"--target-batch must be at least 1 (got {r.TargetEffectiveBatch})");
        if (r.MicroBatch is int fixedMb && fixedMb < 1) throw new EngineException($"--micro-batch must be at least 1 (got {fixedMb})");
        int minMb = r.Method == PlanMethod.Kto ? 2 : 1;
        if (r.MicroBatch is int mb0 && mb0 < minMb)
            throw new EngineException("KTO needs a micro-batch of at least 2 rows (z0 comes from mismatched pairs within it)");
        var microBatches = r.MicroBatch is int mb
            ? new[] { mb }
            : Enumerable.Range(minMb, Math.Max(0, r.TargetEffectiveBatch - minMb + 1)).Where(m => r.TargetEffectiveBatch % m == 0).ToArray();
        if (microBatches.Length == 0) microBatches = new[] { minMb };

        var candidates = new List<PlanCandidate>();
        foreach (var settings in Enumerate(r, microBatches))
            candidates.Add(Evaluate(r, settings));
        var fitting = candidates.Where(c => c.Fits).ToList();
        var chosen = fitting.OrderByDescending(c => c.Score).ThenBy(c => c.Estimate.PeakBytes).FirstOrDefault();
        var smallest = candidates.OrderBy(c => c.Estimate.PeakBytes).ThenByDescending(c => c.Score).First();
        var alternatives = Alternatives(r, chosen ?? smallest);
        return new MemoryPlan(r, r.Config.ParameterCount(), chosen, smallest, alternatives, candidates.Count);
    }

    public static PlanCandidate Evaluate(PlanRequest r, StepSettings s)
    {
        var estimate = new StepMemoryModel(r.Config, s).Estimate();
        int accum = (r.TargetEffectiveBatch + s.MicroBatch - 1) / s.MicroBatch;
        double throughput = ThroughputModel.TokensPerSecond(r.Config, s);
        return new PlanCandidate(s, estimate, accum, throughput, throughput * ThroughputModel.Preference(s), r.BudgetBytes);
    }

    static IEnumerable<StepSettings> Enumerate(PlanRequest r, int[] microBatches)
    {
        var precisions = r.Precision is { } p ? new[] { p } : new[] { Precision.Bf16Mixed, Precision.F32, Precision.Bf16Pure };
        var states = r.Bf16OptimizerStates is bool b ? new[] { b } : new[] { false, true };
        var checkpointing = r.Checkpointing is bool c ? new[] { c } : new[] { false, true };
        var heads = r.Head is { } h ? new[] { h } : new[] { LogProbMode.Fused, LogProbMode.Chunked, LogProbMode.Naive };
        var references = r.ReferenceFree ? new[] { ReferenceMode.Cached }
            : r.Reference is { } rm ? new[] { rm } : new[] { ReferenceMode.Cached, ReferenceMode.Resident };
        foreach (int mb in microBatches)
        foreach (var precision in precisions)
        foreach (bool bf16States in states)
        foreach (bool ckpt in checkpointing)
        foreach (var head in heads)
        foreach (var reference in references)
            yield return new StepSettings
            {
                Method = r.Method, SeqLen = r.SeqLen, MicroBatch = mb, Precision = precision, Bf16OptimizerStates = bf16States,
                ActivationCheckpointing = ckpt, Head = head, Reference = reference, ReferenceFree = r.ReferenceFree,
                Device = r.Device, CompletionFraction = r.CompletionFraction,
            };
    }

    /// <summary>The shown plan with one knob changed at a time, so the output says what each option would cost.</summary>
    static IReadOnlyList<PlanAlternative> Alternatives(PlanRequest r, PlanCandidate basis)
    {
        var s = basis.Settings;
        var list = new List<(string, StepSettings)>();
        int minMb = r.Method == PlanMethod.Kto ? 2 : 1;
        int? larger = Enumerable.Range(s.MicroBatch + 1, Math.Max(0, r.TargetEffectiveBatch - s.MicroBatch))
            .Where(m => r.TargetEffectiveBatch % m == 0).Select(m => (int?)m).FirstOrDefault();
        if (r.MicroBatch is null && larger is int up) list.Add(($"micro-batch {up}", s with { MicroBatch = up }));
        if (r.MicroBatch is null && s.MicroBatch > minMb)
        {
            int down = Enumerable.Range(minMb, s.MicroBatch - minMb).Where(m => r.TargetEffectiveBatch % m == 0).DefaultIfEmpty(minMb).Max();
            list.Add(($"micro-batch {down}", s with { MicroBatch = down }));
        }
        list.Add(($"checkpointing {(s.ActivationCheckpointing ? "off" : "on")}", s with { ActivationCheckpointing = !s.ActivationCheckpointing }));
        foreach (var p in new[] { Precision.F32, Precision.Bf16Mixed, Precision.Bf16Pure }.Where(p => p != s.Precision))
            list.Add(($"precision {StepSettings.PrecisionName(p)}", s with { Precision = p }));
        list.Add(($"{(s.Bf16OptimizerStates ? "fp32" : "bf16")} Adam states", s with { Bf16OptimizerStates = !s.Bf16OptimizerStates }));
        foreach (var h in new[] { LogProbMode.Fused, LogProbMode.Chunked, LogProbMode.Naive }.Where(h => h != s.Head))
            list.Add(($"{h.ToString().ToLowerInvariant()} head", s with { Head = h }));
        if (!s.ReferenceFree)
        {
            var other = s.Reference == ReferenceMode.Cached ? ReferenceMode.Resident : ReferenceMode.Cached;
            list.Add(($"{(other == ReferenceMode.Cached ? "cached reference log-probs" : "resident reference model")}", s with { Reference = other }));
        }
        if (s.Method == PlanMethod.Kto && s.MicroBatch < minMb) list.Clear();
        return list.Select(x => new PlanAlternative(x.Item1, Evaluate(r, x.Item2))).ToList();
    }
}
