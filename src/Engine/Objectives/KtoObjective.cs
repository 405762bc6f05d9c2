using static TorchSharp.torch;

namespace Engine.Objectives;

/// <summary>
/// KTO on unpaired data (Ethayarajh et al. 2024; TRL's KTOTrainer). With r = logp_π − logp_ref:
/// desirable λ_D·(1 − σ(β(r − z0))), undesirable λ_U·(1 − σ(β(z0 − r))); the loss is the mean over rows.
/// apo_zero_unpaired: desirable 1 − σ(βr), undesirable σ(βr), no z0. z0 is computed by the trainer from the
/// mismatched pairs without autograd and passed in already clamped at 0; a non-finite z0 gives a NaN loss.
/// </summary>
public sealed class KtoObjective
{
    public KtoOptions Options { get; }

    public KtoObjective(KtoOptions options)
    {
        options.Validate();
        Options = options;
    }

    /// <summary>Whether the loss uses z0, so the trainer must run the mismatched-pair forward.</summary>
    public bool NeedsZ0 => Options.LossType == KtoLossType.Kto && Options.UseZ0;

    public ObjectiveResult Compute(SequenceScores policy, Tensor? reference, bool[] desirable, double z0)
        => Compute(policy, reference, desirable, new Z0Estimate(z0, z0));

    /// <param name="reference">Reference log-prob sums [B] (no gradient); null when reference-free.</param>
    /// <param name="desirable">Label of each row.</param>
    /// <param name="z0">The KL estimate from <see cref="EstimateZ0"/> (ignored when <see cref="NeedsZ0"/> is false).</param>
    public ObjectiveResult Compute(SequenceScores policy, Tensor? reference, bool[] desirable, Z0Estimate z0)
    {
        long n = policy.Validate("policy");
        if (desirable.Length != n) throw new ArgumentException($"{desirable.Length} labels for {n} rows");
        var o = Options;
        if (o.ReferenceFree != (reference is null))
            throw new ArgumentException(o.ReferenceFree ? "reference-free KTO takes no reference log-probs"
                                                        : "KTO needs the reference log-probs (or ReferenceFree)");
        if (NeedsZ0)
        {
            if (n < 2)
                throw new EngineException("kto: a microbatch of 1 row cannot estimate the KL reference point z0 " +
                                          "(it pairs each prompt with another row's completion); use a microbatch of at least 2");
            if (z0.Clamped < 0) throw new ArgumentException($"z0 must be clamped at 0, got {z0.Clamped}");
        }

        using var scope = NewDisposeScope();
        var r = policy.LogpSum;
        if (reference is not null)
        {
            DpoObjective.CheckLength(reference, n, "reference");
            r = r - reference.detach().to(ScalarType.Float32);
        }
        double beta = o.Beta;
        double z = NeedsZ0 ? z0.Clamped : 0.0;
        var br = r * beta;
        Tensor desirableLoss, undesirableLoss;
        if (o.LossType == KtoLossType.Kto)
        {
            desirableLoss = 1 - (br - beta * z).sigmoid();
            undesirableLoss = 1 - (beta * z - br).sigmoid();
        }
        else
        {
            desirableLoss = 1 - br.sigmoid();
            undesirableLoss = br.sigmoid();
        }
        var mask = tensor(desirable, device: r.device);
        var losses = where(mask, desirableLoss * o.DesirableWeight, undesirableLoss * o.UndesirableWeight);
        var loss = losses.mean();
        // A non-finite z0 (NaN or ±∞ log-probs in the mismatched pairs) makes the loss NaN, so the step goes through
        // the same non-finite guard as any other non-finite loss: skipped, counted, and stopped when it repeats.
        // (+∞ alone would saturate the sigmoids to a finite loss.)
        if (!double.IsFinite(z)) loss = loss * double.NaN;

        var metrics = new ObjectiveMetrics();
        metrics.Add(MetricNames.Loss, TensorValues.ToDoubles(loss)[0] * n, n);
        metrics.Add(MetricNames.Kl, z, 1);
        if (NeedsZ0) metrics.Add(MetricNames.KlUnclamped, z0.Raw, 1);
        var rewards = TensorValues.ToDoubles(br);
        var logps = TensorValues.ToDoubles(policy.LogpSum);
        var undesirable = desirable.Select(d => !d).ToArray();
        AddClass(metrics, ChosenNames, desirable, rewards, logps, policy);
        AddClass(metrics, RejectedNames, undesirable, rewards, logps, policy);
        metrics.AddDifference(MetricNames.RewardsMargins, MetricNames.RewardsChosen, MetricNames.RewardsRejected);
        return new ObjectiveResult(loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>TRL logs a class's metrics only for steps that have rows of it; counts are step totals.</summary>
    readonly record struct ClassNames(string Count, string Rewards, string Logps, string Logits);
    static readonly ClassNames ChosenNames = new(MetricNames.CountChosen, MetricNames.RewardsChosen, MetricNames.LogpsChosen, MetricNames.LogitsChosen);
    static readonly ClassNames RejectedNames = new(MetricNames.CountRejected, MetricNames.RewardsRejected, MetricNames.LogpsRejected, MetricNames.LogitsRejected);

    static void AddClass(ObjectiveMetrics m, ClassNames names, bool[] rows, double[] rewards, double[] logps, SequenceScores policy)
    {
        int count = rows.Count(x => x);
        m.AddTotal(names.Count, count);
        if (count == 0) return;
        double rs = 0, ls = 0;
        for (int i = 0; i < rows.Length; i++)
            if (rows[i]) { rs += rewards[i]; ls += logps[i]; }
        m.Add(names.Rewards, rs, count);
        m.Add(names.Logps, ls, count);
        PairedMetrics.AddLogits(m, names.Logits, policy, rows);
    }

    /// <summary>
    /// z0 = max(0, mean_i(logp_π(y_j|x_i) − logp_ref(y_j|x_i))) over the mismatched pairs, in fp64 and without
    /// autograd. <paramref name="referenceKlSums"/> is null for reference-free KTO (log π_ref = 0).
    /// </summary>
    public static Z0Estimate EstimateZ0(Tensor policyKlSums, Tensor? referenceKlSums)
    {
        var p = TensorValues.ToDoubles(policyKlSums.flatten());
        var q = referenceKlSums is null ? new double[p.Length] : TensorValues.ToDoubles(referenceKlSums.flatten());
        if (p.Length == 0) throw new ArgumentException("no mismatched pairs to estimate z0 from");
        if (q.Length != p.Length) throw new ArgumentException($"{p.Length} policy and {q.Length} reference KL sums");
        double sum = 0;
        for (int i = 0; i < p.Length; i++) sum += p[i] - q[i];
        double raw = sum / p.Length;
        // Math.Max would turn NaN into NaN anyway; spell it out so a NaN estimate is never clamped to 0 silently.
        double clamped = double.IsNaN(raw) ? double.NaN : Math.Max(0.0, raw);
        return new Z0Estimate(raw, clamped);
    }
}
