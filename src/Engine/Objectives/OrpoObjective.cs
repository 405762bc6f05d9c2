using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Objectives;

/// <summary>ORPO settings: λ (TRL calls it beta) weighs the odds-ratio term against the NLL.</summary>
public sealed record OrpoOptions
{
    public double Lambda { get; init; } = 0.1;

    public void Validate()
    {
        if (!(Lambda > 0) || !double.IsFinite(Lambda)) throw new EngineException($"orpo: lambda must be a positive number, got {Lambda}");
    }
}

/// <summary>
/// ORPO (Hong et al. 2024; TRL's ORPOTrainer), no reference model: with per-token averaged log-probs ℓ,
/// log odds(y) = ℓ − log(1 − e^ℓ), and loss = NLL(y_w) − λ·mean log σ(log odds(y_w) − log odds(y_l)).
/// The NLL is the per-token mean over the chosen completions.
/// </summary>
public sealed class OrpoObjective
{
    public OrpoOptions Options { get; }

    public OrpoObjective(OrpoOptions options)
    {
        options.Validate();
        Options = options;
    }

    public ObjectiveResult Compute(SequenceScores chosen, SequenceScores rejected)
    {
        long n = SequenceScores.ValidatePair(chosen, rejected);
        using var scope = NewDisposeScope();
        var lc = chosen.MeanLogp("chosen");
        var lr = rejected.MeanLogp("rejected");
        var logOdds = (lc - lr) - (Log1mExp(lc) - Log1mExp(lr));
        var ratio = F.logsigmoid(logOdds);
        var nll = PairedMetrics.TokenMeanNll(chosen, "chosen");
        double lambda = Options.Lambda;
        var loss = nll - (ratio * lambda).mean();

        var metrics = new ObjectiveMetrics();
        metrics.Add(MetricNames.Loss, TensorValues.ToDoubles(loss)[0] * n, n);
        PairedMetrics.Add(metrics, (lc * lambda).detach(), (lr * lambda).detach(), lc.detach(), lr.detach(), chosen, rejected);
        metrics.Add(MetricNames.NllLoss, -TensorValues.Sum(TensorValues.ToDoubles(chosen.LogpSum)),
                    TensorValues.Sum(TensorValues.ToDoubles(chosen.TokenCount)));
        metrics.Add(MetricNames.LogOddsRatio, TensorValues.Sum(TensorValues.ToDoubles(ratio)), n);
        metrics.Add(MetricNames.LogOddsChosen, TensorValues.Sum(TensorValues.ToDoubles(logOdds)), n);
        return new ObjectiveResult(loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>log(1 − e^x) for x ≤ 0, as log(−expm1(x)): exact near 0 where 1 − e^x cancels.</summary>
    static Tensor Log1mExp(Tensor x) => (-x.expm1()).log();
}
