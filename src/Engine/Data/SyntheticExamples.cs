namespace Engine.Data;

/// <summary>
/// The shape of random-token examples: what the memory measurement and the training benchmark run on, so they
/// exercise a method's own batching without data files or a tokenizer.
/// </summary>
/// <param name="PromptTokens">prompt length (the first token is <paramref name="FirstToken"/>, e.g. BOS)</param>
/// <param name="CompletionTokens">completion length; every completion position goes through the head</param>
/// <param name="Batches">micro-batches per epoch</param>
public sealed record SyntheticShape(int MicroBatch, int PromptTokens, int CompletionTokens, int VocabSize, int FirstToken, int Batches, long Seed)
{
    public int SequenceLength => PromptTokens + CompletionTokens;
    public int Examples => MicroBatch * Batches;
}

public static class SyntheticExamples
{
    /// <summary>Ids 0–2 are left out: tokenizers put their special tokens there.</summary>
    const int FirstPlainId = 3;

    public static List<TokenizedPair> Pairs(SyntheticShape s)
    {
        var rng = new Random((int)s.Seed);
        return Enumerable.Range(0, s.Examples).Select(_ =>
        {
            var prompt = Prompt(s, rng);
            return new TokenizedPair(prompt, Ids(s.CompletionTokens, s, rng), Ids(s.CompletionTokens, s, rng));
        }).ToList();
    }

    /// <summary>Rows with alternating labels, so every micro-batch holds both classes.</summary>
    public static List<TokenizedUnpaired> Rows(SyntheticShape s)
    {
        var rng = new Random((int)s.Seed);
        return Enumerable.Range(0, s.Examples).Select(i => new TokenizedUnpaired(Prompt(s, rng), Ids(s.CompletionTokens, s, rng), i % 2 == 0)).ToList();
    }

    static int[] Prompt(SyntheticShape s, Random rng)
    {
        var ids = Ids(s.PromptTokens, s, rng);
        if (ids.Length > 0) ids[0] = s.FirstToken;
        return ids;
    }

    static int[] Ids(int n, SyntheticShape s, Random rng)
    {
        if (s.VocabSize <= FirstPlainId) throw new EngineException($"a vocabulary of {s.VocabSize} tokens is too small for synthetic examples");
        var ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = rng.Next(FirstPlainId, s.VocabSize);
        return ids;
    }
}
