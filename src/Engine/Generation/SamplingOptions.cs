namespace Engine.Generation;

public sealed record SamplingOptions
{
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>0 means greedy decoding.</summary>
    public double Temperature { get; init; } = 0.8;
    public double TopP { get; init; } = 0.95;
    public int? TopK { get; init; }
    public long Seed { get; init; } = 0;
    /// <summary>Stop a sequence at EOS (the EOS id itself is not returned).</summary>
    public bool StopAtEos { get; init; } = true;

    public void Validate()
    {
        if (MaxNewTokens < 0) throw new EngineException($"--max-new-tokens must be >= 0 (got {MaxNewTokens})");
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new EngineException($"--temperature must be >= 0 (got {Temperature})");
        if (!(TopP > 0 && TopP <= 1)) throw new EngineException($"--top-p must be in (0, 1] (got {TopP})");
        if (TopK is int k && k <= 0) throw new EngineException($"--top-k must be positive (got {k})");
    }
}
