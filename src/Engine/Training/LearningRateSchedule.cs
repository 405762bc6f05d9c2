using Engine.Util;

namespace Engine.Training;

public enum LrSchedulerKind
{
    [Spelling("constant", "constant_with_warmup")] Constant,
    [Spelling("linear")] Linear,
    [Spelling("cosine")] Cosine,
}

/// <summary>
/// Learning rate per optimizer step, as Hugging Face's schedulers compute it: linear warm-up from 0 over
/// <c>warmupSteps</c>, then constant, linear decay to 0, or half-cosine decay to 0 at <c>totalSteps</c>.
/// A pure function of the step, so resuming needs only the step number.
/// </summary>
public sealed record LearningRateSchedule(double BaseLr, LrSchedulerKind Kind, int WarmupSteps, int TotalSteps)
{
    /// <summary>Learning rate for the update with 0-based index <paramref name="step"/>.</summary>
    public double At(int step)
    {
        if (step < WarmupSteps) return BaseLr * step / Math.Max(1, WarmupSteps);
        if (Kind == LrSchedulerKind.Constant) return BaseLr;
        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        progress = Math.Clamp(progress, 0, 1);
        return Kind == LrSchedulerKind.Linear
            ? BaseLr * (1 - progress)
            : BaseLr * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
