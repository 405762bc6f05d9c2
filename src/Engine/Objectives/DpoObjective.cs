using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Objectives;

/// <summary>
/// The DPO family on paired data (alignment.md, TRL's DPOTrainer). With r = logp_π − logp_ref and
/// h = r(y_w) − r(y_l):
/// sigmoid −(1−ε)·log σ(βh) − ε·log σ(−βh); robust ((1−ε)·(−log σ(βh)) − ε·(−log σ(−βh)))/(1−2ε);
/// hinge relu(1 − βh); ipo (h − 1/(2β))² with per-token averaged log-probs. Reference-free sets logp_ref = 0.
/// RPO adds α × the chosen completions' per-token NLL.
/// </summary>
public sealed class DpoObjective
{
    public DpoOptions Options { get; }

    public DpoObjective(DpoOptions options)
    {
        options.Validate();
        Options = options;
    }

    /// <param name="referenceChosen">Reference log-prob sums [B] (no gradient); null when reference-free.</param>
    public ObjectiveResult Compute(SequenceScores chosen, SequenceScores rejected, Tensor? referenceChosen, Tensor? referenceRejected)
    {
        long n = SequenceScores.ValidatePair(chosen, rejected);
        var o = Options;
        if (o.ReferenceFree != (referenceChosen is null) || o.ReferenceFree != (referenceRejected is null))
            throw new ArgumentException(o.ReferenceFree
                ? "reference-free DPO takes no reference log-probs"
                : "DPO needs the reference log-probs of chosen and rejected (or ReferenceFree)");

        using var scope = NewDisposeScope();
        bool ipo = o.LossType == DpoLossType.Ipo;
        // IPO compares per-token averages (TRL divides policy and reference sums by the completion length).
        var piChosen = ipo ? chosen.MeanLogp("chosen") : chosen.LogpSum;
        var piRejected = ipo ? rejected.MeanLogp("rejected") : rejected.LogpSum;
        Tensor refChosen, refRejected;
        if (o.ReferenceFree)
        {
            refChosen = zeros_like(piChosen);
            refRejected = zeros_like(piRejected);
        }
        else
        {
            CheckLength(referenceChosen!, n, "referenceChosen");
            CheckLength(referenceRejected!, n, "referenceRejected");
            refChosen = referenceChosen!.detach().to(ScalarType.Float32);
            refRejected = referenceRejected!.detach().to(ScalarType.Float32);
            if (ipo)
            {
                refChosen = refChosen / chosen.TokenCount;
                refRejected = refRejected / rejected.TokenCount;
            }
        }

        var chosenRatio = piChosen - refChosen;
        var rejectedRatio = piRejected - refRejected;
        var h = chosenRatio - rejectedRatio;
        double beta = o.Beta, eps = o.LabelSmoothing;
        var bh = h * beta;
        Tensor losses = o.LossType switch
        {
            DpoLossType.Sigmoid => -F.logsigmoid(bh) * (1 - eps) - F.logsigmoid(-bh) * eps,
            DpoLossType.Robust => (-F.logsigmoid(bh) * (1 - eps) + F.logsigmoid(-bh) * eps) / (1 - 2 * eps),
            DpoLossType.Hinge => F.relu(1 - bh),
            DpoLossType.Ipo => (h - 1 / (2 * beta)).pow(2),
            _ => throw new ArgumentOutOfRangeException(nameof(o.LossType)),
        };
        var loss = losses.mean();

        var metrics = new ObjectiveMetrics();
        if (o.RpoAlpha is double alpha)
        {
            var nll = PairedMetrics.TokenMeanNll(chosen, "chosen");
            loss = loss + nll * alpha;
            double tokens = TensorValues.Sum(TensorValues.ToDoubles(chosen.TokenCount));
            metrics.Add(MetricNames.NllLoss, -TensorValues.Sum(TensorValues.ToDoubles(chosen.LogpSum)), tokens);
        }
        metrics.Add(MetricNames.Loss, TensorValues.ToDoubles(loss)[0] * n, n);
        PairedMetrics.Add(metrics, (chosenRatio * beta).detach(), (rejectedRatio * beta).detach(),
                          piChosen.detach(), piRejected.detach(), chosen, rejected);
        return new ObjectiveResult(loss.MoveToOuterDisposeScope(), metrics);
    }

    internal static void CheckLength(Tensor t, long n, string name)
    {
        if (t.dim() != 1 || t.shape[0] != n)
            throw new ArgumentException($"{name} must have shape [{n}], got [{string.Join(", ", t.shape)}]");
    }
}
