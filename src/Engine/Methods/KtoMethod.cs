using Engine.Data;
using Engine.Distributed;
using Engine.Kernels;
using Engine.Objectives;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Methods;

/// <summary>Kahneman-Tversky optimisation on desirable/undesirable completions (TRL's KTOTrainer).</summary>
public sealed class KtoMethod : AlignmentMethod
{
    public override string Name => "kto";
    public override string Description => "Kahneman-Tversky optimisation on desirable/undesirable completions";
    public override DataShape Shape => DataShape.Unpaired;
    /// <summary>alignment.md: KTO wants 2–10× DPO's rate.</summary>
    public override double DefaultLearningRate => 5e-6;
    public override double? DefaultBeta => new KtoOptions().Beta;
    protected override IReadOnlyCollection<string> Knobs { get; } =
        new[] { "beta", "loss-type", "reference-free", "no-z0", "desirable-weight", "undesirable-weight" };
    public override IReadOnlyList<string> LossTypes => Spelling.Names<KtoLossType>();
    /// <summary>z0 pairs each prompt with another row's completion in the same micro-batch.</summary>
    public override int MinMicroBatch => 2;

    public override bool UsesReference(ObjectiveOptions o) => !o.ReferenceFree;

    public override MethodCost Cost(ObjectiveOptions o)
    {
        bool z0 = new KtoObjective(Options(o)).NeedsZ0;
        return new(PolicyRows: 1, NoGradPolicyRows: z0 ? 1 : 0, ReferenceRows: UsesReference(o) ? (z0 ? 2 : 1) : 0);
    }

    public KtoOptions Options(ObjectiveOptions o) => new()
    {
        Beta = o.Beta ?? DefaultBeta!.Value,
        LossType = o.LossType is null ? KtoLossType.Kto : Spelling.Parse<KtoLossType>(o.LossType, "--loss-type (kto)"),
        UseZ0 = !o.NoZ0,
        ReferenceFree = o.ReferenceFree,
        DesirableWeight = o.DesirableWeight ?? 1.0,
        UndesirableWeight = o.UndesirableWeight ?? 1.0,
    };

    protected override void ValidateValues(ObjectiveOptions o) => Options(o).Validate();

    public override PreparedSplit Prepare(Dataset data, ExampleTokenizer tokenizer, Batching batching, ObjectiveOptions options)
    {
        var report = new TruncationReport();
        var notices = new List<string>();
        var rows = tokenizer.TokenizeAll(data.ToUnpaired(out var notice), report);
        if (notice != null) notices.Add(notice);
        if (report.Any) notices.Add($"{data.Origin}: {report}");
        var o = Options(options);
        if (KtoClassBalance.Of(rows.Select(r => r.Desirable), o.DesirableWeight, o.UndesirableWeight).Warning is { } warning)
            notices.Add($"warning: {data.Origin}: kto {warning}");
        var batches = new UnpairedBatchIterator(rows, batching.MicroBatch, batching.Seed, tokenizer.PadId, tokenizer.Settings.MaxLength, batching.Shuffle, shard: batching.Shard);
        return new PreparedSplit(batches, report, notices);
    }

    public override IBatchSource<ITrainBatch> Synthetic(SyntheticShape shape) =>
        new UnpairedBatchIterator(SyntheticExamples.Rows(shape), shape.MicroBatch, shape.Seed, 0, shape.SequenceLength, shuffle: false);

    public override IMethodStep CreateStep(ObjectiveOptions options, StepContext c)
    {
        var kto = new KtoObjective(Options(options));
        return Step<UnpairedBatch>((batch, eval) =>
        {
            var z0 = kto.NeedsZ0 ? EstimateZ0(batch, c, eval) : new Z0Estimate(0, 0);
            var policy = SequenceScorer.Score(c.Policy, batch.Sequences, c.Head);
            using var reference = c.Reference?.Sums(MatchedQuery(batch), eval);
            return kto.Compute(policy, reference, batch.Desirable, z0);
        });
    }

    /// <summary>z0 from the mismatched pairs of the global micro-batch, without gradient (TRL and the paper).</summary>
    static Z0Estimate EstimateZ0(UnpairedBatch batch, StepContext c, bool eval) => AcrossRanks(LocalZ0(batch, c, eval), batch.Rows, c.Ranks);

    /// <summary>
    /// z0 over the global micro-batch: every rank's Σ log-ratio and row count are summed before the mean is clamped,
    /// as TRL gathers the KL terms of all processes (a NaN on any rank makes z0 NaN everywhere).
    /// </summary>
    static Z0Estimate AcrossRanks(Z0Estimate local, int rows, ICommunicator ranks)
    {
        if (ranks.Size == 1) return local;
        Span<double> sums = stackalloc double[] { local.Raw * rows, rows };
        ranks.AllReduceSum(sums);
        double raw = sums[0] / sums[1];
        return new Z0Estimate(raw, double.IsNaN(raw) ? double.NaN : Math.Max(0.0, raw));
    }

    static Z0Estimate LocalZ0(UnpairedBatch batch, StepContext c, bool eval)
    {
        var (tokenLogps, mask) = SequenceScorer.TokenLogps(c.Policy, batch.MismatchedSequences, c.Head);
        using (tokenLogps)
        using (mask)
        using (var referenceSums = c.Reference?.Sums(MismatchedQuery(batch), eval) ?? zeros(batch.Rows))
        {
            if (c.Head == LogProbMode.Naive)
            {
                using var policySums = (tokenLogps * mask).sum(1);
                return KtoObjective.EstimateZ0(policySums, referenceSums);
            }
            using var kl = KlReduction.ComputeWithReferenceSums(tokenLogps, referenceSums, mask);
            return new Z0Estimate(kl.MeanRaw, kl.Z0);
        }
    }

    static ReferenceQuery MatchedQuery(UnpairedBatch batch) =>
        new(batch.Sequences, batch.RowIndices.Select(r => SequenceKey(r, r)).ToArray());

    static ReferenceQuery MismatchedQuery(UnpairedBatch batch)
    {
        int m = batch.Rows;
        var keys = new long[m];
        for (int i = 0; i < m; i++) keys[i] = SequenceKey(batch.RowIndices[i], batch.MismatchedRowIndices[i]);
        return new ReferenceQuery(batch.MismatchedSequences, keys);
    }

    public override IEnumerable<ReferenceQuery> ReferenceQueries(ITrainBatch batch, ObjectiveOptions options)
    {
        var b = As<UnpairedBatch>(batch, Name);
        yield return MatchedQuery(b);
        if (new KtoObjective(Options(options)).NeedsZ0) yield return MismatchedQuery(b);
    }
}
