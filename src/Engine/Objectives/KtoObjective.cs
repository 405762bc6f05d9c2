using System.Globalization;
using static TorchSharp.torch;

namespace Engine.Objectives;

/// <summary>
/// KTO on unpaired data (Ethayarajh et al. 2024; TRL's KTOTrainer). With r = logp_π − logp_ref:
/// desirable λ_D·(1 − σ(β(r − z0))), undesirable λ_U·(1 − σ(β(z0 − r))); the loss is the mean over rows.
/// apo_zero_unpaired: desirable 1 − σ(βr), undesirable σ(βr), no z0. z0 is computed by the trainer from the
/// mismatched pairs without autograd and passed in already clamped at 0.
/// </summary>
public sealed class KtoObjective
{
    /// <summary>λ_D·n_D / (λ_U·n_U) should lie in [1, 4/3] (alignment.md; the paper says [1, 3/2]).</summary>
    public const double ImbalanceUpperBound = 4.0 / 3.0;

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
            if (double.IsNaN(z0.Clamped) || double.IsInfinity(z0.Clamped))
                throw new EngineException($"kto: the KL estimate z0 is {z0.Clamped.ToString(CultureInfo.InvariantCulture)} " +
                                          "(log-probs overflowed? compute them in fp32)");
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

        var metrics = new ObjectiveMetrics();
        metrics.Add(MetricNames.Loss, TensorValues.ToDoubles(loss)[0] * n, n);
        metrics.Add(MetricNames.Kl, z, 1);
        if (NeedsZ0) metrics.Add(MetricNames.KlUnclamped, z0.Raw, 1);
        var rewards = TensorValues.ToDoubles(br);
        var logps = TensorValues.ToDoubles(policy.LogpSum);
        var undesirable = desirable.Select(d => !d).ToArray();
        AddClass(metrics, "chosen", desirable, rewards, logps, policy);
        AddClass(metrics, "rejected", undesirable, rewards, logps, policy);
        metrics.AddDifference(MetricNames.RewardsMargins, MetricNames.RewardsChosen, MetricNames.RewardsRejected);
        return new ObjectiveResult(loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>TRL logs a class's metrics only for steps that have rows of it; counts are step totals.</summary>
    static void AddClass(ObjectiveMetrics m, string split, bool[] rows, double[] rewards, double[] logps, SequenceScores policy)
    {
        int count = rows.Count(x => x);
        m.AddTotal($"count/{split}", count);
        if (count == 0) return;
        double rs = 0, ls = 0;
        for (int i = 0; i < rows.Length; i++)
            if (rows[i]) { rs += rewards[i]; ls += logps[i]; }
        m.Add($"rewards/{split}", rs, count);
        m.Add($"logps/{split}", ls, count);
        PairedMetrics.AddLogits(m, $"logits/{split}", policy, rows);
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

    /// <summary>
    /// TRL's mismatched pairing inside a microbatch of <paramref name="m"/> rows: prompt i is paired with the
    /// completion of row (i − 1) mod m, i.e. (x1,yn), (x2,y1), …, (xn,y(n−1)).
    /// </summary>
    public static int[] MismatchedCompletionIndices(int m)
    {
        if (m < 2) throw new EngineException($"kto: a microbatch of {m} row(s) has no mismatched pairs; use at least 2");
        return Enumerable.Range(0, m).Select(i => (i + m - 1) % m).ToArray();
    }

    /// <summary>
    /// Warns when λ_D·n_D / (λ_U·n_U) is outside [1, 4/3], suggesting either λ_D or λ_U (not both), as TRL
    /// does. Returns null when the weights are in range.
    /// </summary>
    public static string? CheckImbalance(long nDesirable, long nUndesirable, double desirableWeight, double undesirableWeight)
    {
        if (nDesirable < 0 || nUndesirable < 0) throw new ArgumentException("class counts must be ≥ 0");
        if (nDesirable == 0 || nUndesirable == 0)
            return $"kto: the data has {nDesirable} desirable and {nUndesirable} undesirable rows; " +
                   "KTO needs both (its z0 reference point only makes sense against both classes)";
        double ratio = desirableWeight * nDesirable / (undesirableWeight * nUndesirable);
        if (ratio >= 1 && ratio <= ImbalanceUpperBound) return null;
        static string F(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
        double dLo = undesirableWeight * nUndesirable / nDesirable, dHi = dLo * ImbalanceUpperBound;
        double uHi = desirableWeight * nDesirable / nUndesirable, uLo = uHi / ImbalanceUpperBound;
        return $"kto: {nDesirable} desirable vs {nUndesirable} undesirable rows with desirable weight {F(desirableWeight)} " +
               $"and undesirable weight {F(undesirableWeight)} give λ_D·n_D/(λ_U·n_U) = {F(ratio)}, outside [1, 4/3]; " +
               $"set EITHER the desirable weight in [{F(dLo)}, {F(dHi)}] OR the undesirable weight in [{F(uLo)}, {F(uHi)}]";
    }
}
