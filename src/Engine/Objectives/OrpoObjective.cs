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
/// log odds(y) = ℓ − log(1 − e^ℓ), and loss = NLL(x, y_w) − λ·mean log σ(log odds(y_w) − log odds(y_l)).
/// The NLL is the per-token mean over the prompt and chosen tokens of the microbatch, as TRL's ORPOTrainer
/// (concatenated_forward: "orpo chosen nll loss is computed over the full prompt and response") takes it: every
/// non-padding label of prompt + chosen. The odds ratio uses the completion tokens only (get_batch_logps).
/// </summary>
public sealed class OrpoObjective
{
    public OrpoOptions Options { get; }

    public OrpoObjective(OrpoOptions options)
    {
        options.Validate();
        Options = options;
    }

    /// <param name="chosenPrompts">scores of the chosen rows' prompt tokens (each after the first), which the NLL also
    /// covers; null: the NLL over the chosen completions only (the ORPO paper's L_SFT on y_w)</param>
    public ObjectiveResult Compute(SequenceScores chosen, SequenceScores rejected, SequenceScores? chosenPrompts = null)
    {
        long n = SequenceScores.ValidatePair(chosen, rejected);
        if (chosenPrompts is not null && chosenPrompts.Validate("chosen prompts") != n)
            throw new ArgumentException($"chosen has {n} rows, chosen prompts has {chosenPrompts.Length}");
        using var scope = NewDisposeScope();
        var lc = chosen.MeanLogp("chosen");
        var lr = rejected.MeanLogp("rejected");
        var logOdds = (lc - lr) - (Log1mExp(lc) - Log1mExp(lr));
        var ratio = F.logsigmoid(logOdds);
        var nllTokens = chosenPrompts is null ? chosen
            : new SequenceScores(chosen.LogpSum + chosenPrompts.LogpSum, chosen.TokenCount + chosenPrompts.TokenCount, chosen.LogitSum);
        var nll = PairedMetrics.TokenMeanNll(nllTokens, "chosen");
        double lambda = Options.Lambda;
        var loss = nll - (ratio * lambda).mean();

        var metrics = new ObjectiveMetrics();
        metrics.Add(MetricNames.Loss, TensorValues.ToDoubles(loss)[0] * n, n);
        PairedMetrics.Add(metrics, (lc * lambda).detach(), (lr * lambda).detach(), lc.detach(), lr.detach(), chosen, rejected);
        metrics.Add(MetricNames.NllLoss, -TensorValues.Sum(TensorValues.ToDoubles(nllTokens.LogpSum)),
                    TensorValues.Sum(TensorValues.ToDoubles(nllTokens.TokenCount)));
        metrics.Add(MetricNames.LogOddsRatio, TensorValues.Sum(TensorValues.ToDoubles(ratio)), n);
        metrics.Add(MetricNames.LogOddsChosen, TensorValues.Sum(TensorValues.ToDoubles(logOdds)), n);
        return new ObjectiveResult(loss.MoveToOuterDisposeScope(), metrics);
    }

    /// <summary>log(1 − e^x) for x ≤ 0, as log(−expm1(x)): exact near 0 where 1 − e^x cancels.</summary>
    static Tensor Log1mExp(Tensor x) => (-x.expm1()).log();
}
