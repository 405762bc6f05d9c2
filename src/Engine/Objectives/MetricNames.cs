namespace Engine.Objectives;

/// <summary>TRL's metric names, so that logs compare line for line with a TRL run.</summary>
public static class MetricNames
{
    public const string Loss = "loss";
    public const string RewardsChosen = "rewards/chosen";
    public const string RewardsRejected = "rewards/rejected";
    public const string RewardsAccuracies = "rewards/accuracies";
    public const string RewardsMargins = "rewards/margins";
    public const string LogpsChosen = "logps/chosen";
    public const string LogpsRejected = "logps/rejected";
    public const string LogitsChosen = "logits/chosen";
    public const string LogitsRejected = "logits/rejected";
    public const string NllLoss = "nll_loss";
    /// <summary>KTO: the z0 the loss used (TRL logs it as "kl").</summary>
    public const string Kl = "kl";
    /// <summary>KTO: the z0 estimate before the clamp at 0 (not a TRL name; useful to see how negative it went).</summary>
    public const string KlUnclamped = "kl/unclamped";
    /// <summary>KTO: desirable / undesirable rows per step (TRL's count/chosen, count/rejected).</summary>
    public const string CountChosen = "count/chosen";
    public const string CountRejected = "count/rejected";
    /// <summary>ORPO: mean log σ(log-odds ratio) and mean log-odds ratio.</summary>
    public const string LogOddsRatio = "log_odds_ratio";
    public const string LogOddsChosen = "log_odds_chosen";
    /// <summary>SFT: completion tokens per step.</summary>
    public const string NumTokens = "num_tokens";
}
