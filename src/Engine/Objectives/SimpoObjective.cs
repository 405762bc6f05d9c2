using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Objectives;

/// <summary>SimPO settings. Defaults follow the SimPO paper's starting point (β = 2, γ/β = 0.5); TRL's CPOConfig
/// defaults (β = 0.1, γ = 0.5) are tuned for CPO's sigmoid loss, not SimPO's length-normalised margin.</summary>
public sealed record SimpoOptions
{
    public double Beta { get; init; } = 2.0;
    /// <summary>γ, the target reward margin (TRL's simpo_gamma; subtracted outside β).</summary>
    public double Gamma { get; init; } = 1.0;

    public void Validate()
    {
        if (!(Beta > 0) || !double.IsFinite(Beta)) throw new EngineException($"simpo: beta must be a positive number, got {Beta}");
        if (!double.IsFinite(Gamma) || Gamma < 0) throw new EngineException($"simpo: gamma must be ≥ 0, got {Gamma}");
    }
}

/// <summary>
/// SimPO (Meng et al. 2024; TRL's CPOTrainer with loss_type="simpo"), no reference model:
/// −log σ(β·ℓ(y_w) − β·ℓ(y_l) − γ) with ℓ the per-token averaged log-prob; rewards are β·ℓ.
/// </summary>
public sealed class SimpoObjective
{
    public SimpoOptions Options { get; }

    public SimpoObjective(SimpoOptions options)
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
        double beta = Options.Beta;
        var loss = (-F.logsigmoid((lc - lr) * beta - Options.Gamma)).mean();

        var metrics = new ObjectiveMetrics();
        metrics.Add(MetricNames.Loss, TensorValues.ToDoubles(loss)[0] * n, n);
        PairedMetrics.Add(metrics, (lc * beta).detach(), (lr * beta).detach(), lc.detach(), lr.detach(), chosen, rejected);
        return new ObjectiveResult(loss.MoveToOuterDisposeScope(), metrics);
    }
}
