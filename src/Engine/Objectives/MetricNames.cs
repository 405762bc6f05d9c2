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
    /// <summary>KTO: desirable / undesirable rows per step. Not TRL names (TRL's KTOTrainer logs no counts); Engine's own.</summary>
    public const string CountChosen = "count/chosen";
    public const string CountRejected = "count/rejected";
    /// <summary>ORPO: mean log σ(log-odds ratio) and mean log-odds ratio.</summary>
    public const string LogOddsRatio = "log_odds_ratio";
    public const string LogOddsChosen = "log_odds_chosen";
    /// <summary>SFT: completion tokens per step.</summary>
    public const string NumTokens = "num_tokens";

    // The trainer's own columns, as the HF Trainer logs them.
    public const string LearningRate = "learning_rate";
    public const string GradNorm = "grad_norm";
    public const string Epoch = "epoch";
    /// <summary>Not an HF name: tokens through the policy per second of the step.</summary>
    public const string TokensPerSecond = "tokens_per_second";
    /// <summary>Not an HF name: 1 on a step skipped by the non-finite guard.</summary>
    public const string Skipped = "skipped";
    /// <summary>Eval rows carry the training names with this prefix (HF's eval_loss, eval_rewards/chosen, …).</summary>
    public const string EvalPrefix = "eval_";

    /// <summary>The seed paper's Table 1 columns (header, metric), for `engine eval` and the demo report.</summary>
    public static readonly IReadOnlyList<(string Header, string Metric)> TableOne = new[]
    {
        ("logits ✓", LogitsChosen), ("logits ✗", LogitsRejected), ("logps ✓", LogpsChosen), ("logps ✗", LogpsRejected),
        ("loss", Loss), ("rewards ✓", RewardsChosen), ("rewards ✗", RewardsRejected), ("margin", RewardsMargins),
        ("accuracy", RewardsAccuracies),
    };
}
