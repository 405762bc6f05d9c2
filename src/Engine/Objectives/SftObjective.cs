using static TorchSharp.torch;

namespace Engine.Objectives;

/// <summary>
/// Supervised fine-tuning: the mean NLL per completion token over the whole microbatch,
/// −Σ_rows LogpSum / Σ_rows TokenCount. Token-weighted (long completions weigh more), not a mean of
/// per-sequence means: that is what transformers' cross-entropy with ignored prompt labels, and so TRL's
/// SFTTrainer, computes, so losses compare directly. The "loss" metric carries (ΣNLL, Σtokens), so merging
/// microbatches gives the exact per-token mean of the step.
/// </summary>
public static class SftObjective
{
    public static ObjectiveResult Compute(SequenceScores completions)
    {
        completions.Validate("completions");
        using var scope = NewDisposeScope();
        var loss = PairedMetrics.TokenMeanNll(completions, "the microbatch");
        double tokens = TensorValues.Sum(TensorValues.ToDoubles(completions.TokenCount));
        var metrics = new ObjectiveMetrics();
        metrics.Add(MetricNames.Loss, -TensorValues.Sum(TensorValues.ToDoubles(completions.LogpSum)), tokens);
        metrics.AddTotal(MetricNames.NumTokens, tokens);
        return new ObjectiveResult(loss.MoveToOuterDisposeScope(), metrics);
    }
}
