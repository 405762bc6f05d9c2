namespace Engine.Data;

/// <summary>One part of a row as the trainer sees it: its ids after truncation and their text (special tokens kept).</summary>
public sealed record InspectedPart(string Name, int[] Ids, string Text);

/// <summary>A row as the trainer sees it: prompt and completion parts (chosen/rejected, or completion), the label for
/// unpaired rows, and whether the length limits drop it (then the parts are before truncation).</summary>
public sealed record InspectedRow(RowSource Source, IReadOnlyList<InspectedPart> Parts, bool? Desirable, bool Dropped);

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
    /// <summary>The first rows as token ids (`data inspect --show N`); empty without a tokenizer.</summary>
    public IReadOnlyList<InspectedRow> Shown { get; init; } = Array.Empty<InspectedRow>();
    public int EmptyCompletionRows => Dataset.SkippedRows.Count(s => s.Reason.StartsWith("empty", StringComparison.Ordinal));

    /// <param name="show">rows to return as token ids (needs a tokenizer)</param>
    public static DatasetInspection Run(Dataset dataset, ExampleTokenizer? tokenizer = null, double desirableWeight = 1.0, double undesirableWeight = 1.0,
        int show = 0)
    {
        if (show < 0) throw new ArgumentOutOfRangeException(nameof(show));
        var shown = new List<InspectedRow>();
        void Show(RowSource source, EncodedRow encoded, (int[] Prompt, int[][] Completions)? fitted, string[] names, bool? desirable)
        {
            if (shown.Count >= show) return;
            var prompt = fitted?.Prompt ?? encoded.Prompt;
            var completions = fitted?.Completions ?? encoded.Completions;
            var parts = new List<InspectedPart> { Part("prompt", prompt) };
            for (int i = 0; i < names.Length; i++) parts.Add(Part(names[i], completions[i]));
            shown.Add(new InspectedRow(source, parts, desirable, fitted is null));
        }
        InspectedPart Part(string name, int[] ids) => new(name, ids, tokenizer!.Tokenizer.Decode(ids, skipSpecial: false));

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
                    var encoded = tokenizer.Encode(row);
                    int p = encoded.Prompt.Length, c = encoded.Completions[0].Length, r = encoded.Completions[1].Length;
                    AddTokens("prompt", p); AddTokens("chosen", c); AddTokens("rejected", r);
                    AddTokens("total", p + Math.Max(c, r));
                    Show(row.Source, encoded, tokenizer.Fit(encoded, row.Source, report!), new[] { "chosen", "rejected" }, null);
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
                    var encoded = tokenizer.Encode(row);
                    int p = encoded.Prompt.Length, c = encoded.Completions[0].Length;
                    AddTokens("prompt", p); AddTokens("completion", c); AddTokens("total", p + c);
                    Show(row.Source, encoded, tokenizer.Fit(encoded, row.Source, report!), new[] { "completion" }, row.Label);
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
            Shown = shown,
        };
    }
}
