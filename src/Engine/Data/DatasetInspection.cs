namespace Engine.Data;

/// <summary>
/// What `engine data inspect` reports about a dataset: its format, lengths in characters (and in tokens with a
/// tokenizer), how many rows the length limits would cut, skipped rows, and KTO's class balance.
/// </summary>
public sealed class DatasetInspection
{
    public required Dataset Dataset { get; init; }
    /// <summary>Character lengths by field: prompt, chosen, rejected (paired) or prompt, completion (unpaired).</summary>
    public required IReadOnlyDictionary<string, LengthStats> Chars { get; init; }
    /// <summary>Token lengths by field before truncation, and "total" (prompt + longest completion); null without a tokenizer.</summary>
    public IReadOnlyDictionary<string, LengthStats>? Tokens { get; init; }
    public TruncationReport? Truncation { get; init; }
    public TokenizationSettings? Settings { get; init; }
    /// <summary>Balance of desirable/undesirable rows as KTO would see them (paired data: after conversion).</summary>
    public required KtoClassBalance Balance { get; init; }
    /// <summary>Pairs whose chosen and rejected are the same (they give DPO no signal).</summary>
    public int IdenticalPairs { get; init; }
    public int EmptyCompletionRows => Dataset.SkippedRows.Count(s => s.Reason.StartsWith("empty", StringComparison.Ordinal));

    public static DatasetInspection Run(Dataset dataset, ExampleTokenizer? tokenizer = null, double desirableWeight = 1.0, double undesirableWeight = 1.0)
    {
        var chars = new Dictionary<string, LengthStats>();
        Dictionary<string, List<int>>? tokens = tokenizer is null ? null : new();
        TruncationReport? report = tokenizer is null ? null : new TruncationReport();
        void AddTokens(string field, int length)
        {
            if (!tokens!.TryGetValue(field, out var list)) tokens[field] = list = new List<int>();
            list.Add(length);
        }

        KtoClassBalance balance;
        int identical = 0;
        if (dataset.Format == DataFormat.Paired)
        {
            var rows = dataset.PairedExamples;
            chars["prompt"] = LengthStats.Of(rows.Select(r => r.Prompt.CharLength));
            chars["chosen"] = LengthStats.Of(rows.Select(r => r.Chosen.CharLength));
            chars["rejected"] = LengthStats.Of(rows.Select(r => r.Rejected.CharLength));
            identical = rows.Count(r => r.Chosen.Equals(r.Rejected));
            balance = new KtoClassBalance(rows.Count, rows.Count, desirableWeight, undesirableWeight);
            if (tokenizer is not null)
                foreach (var row in rows)
                {
                    var text = ExampleRenderer.Render(row, tokenizer.ChatRenderer);
                    int[] p = tokenizer.EncodePrompt(text.Prompt), c = tokenizer.EncodeCompletion(text.Chosen), r = tokenizer.EncodeCompletion(text.Rejected);
                    AddTokens("prompt", p.Length); AddTokens("chosen", c.Length); AddTokens("rejected", r.Length);
                    AddTokens("total", p.Length + Math.Max(c.Length, r.Length));
                    tokenizer.Fit(p, new[] { c, r }, row.Source, report!);
                }
        }
        else
        {
            var rows = dataset.UnpairedExamples;
            chars["prompt"] = LengthStats.Of(rows.Select(r => r.Prompt.CharLength));
            chars["completion"] = LengthStats.Of(rows.Select(r => r.Completion.CharLength));
            balance = KtoClassBalance.Of(rows.Select(r => r.Label), desirableWeight, undesirableWeight);
            if (tokenizer is not null)
                foreach (var row in rows)
                {
                    var text = ExampleRenderer.Render(row, tokenizer.ChatRenderer);
                    int[] p = tokenizer.EncodePrompt(text.Prompt), c = tokenizer.EncodeCompletion(text.Completion);
                    AddTokens("prompt", p.Length); AddTokens("completion", c.Length); AddTokens("total", p.Length + c.Length);
                    tokenizer.Fit(p, new[] { c }, row.Source, report!);
                }
        }
        return new DatasetInspection
        {
            Dataset = dataset,
            Chars = chars,
            Tokens = tokens?.ToDictionary(kv => kv.Key, kv => LengthStats.Of(kv.Value)),
            Truncation = report,
            Settings = tokenizer?.Settings,
            Balance = balance,
            IdenticalPairs = identical,
        };
    }
}
