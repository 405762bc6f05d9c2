namespace Engine.Data;

/// <summary>
/// The rows of a preference dataset file, in one of TRL's formats: paired (prompt, chosen, rejected — the
/// prompt possibly extracted from implicit-prompt rows) or unpaired (prompt, completion, label), as text or as
/// conversations. Every row keeps its provenance for error messages.
/// </summary>
public sealed class Dataset
{
    public string Origin { get; }
    public DataFormat Format { get; }
    public DataStyle Style { get; }
    /// <summary>True when the rows were {chosen, rejected} and the prompt was their common prefix (TRL's maybe_extract_prompt).</summary>
    public bool PromptWasImplicit { get; init; }
    public IReadOnlyList<PreferenceExample> PairedExamples { get; }
    public IReadOnlyList<UnpairedExample> UnpairedExamples { get; }
    public IReadOnlyList<SkippedRow> SkippedRows { get; init; } = Array.Empty<SkippedRow>();
    /// <summary>Things the user should know about how the file was read (skipped rows, labels from ratings, ignored columns).</summary>
    public IReadOnlyList<string> Notices { get; init; } = Array.Empty<string>();

    public int Count => Format == DataFormat.Paired ? PairedExamples.Count : UnpairedExamples.Count;

    Dataset(string origin, DataFormat format, DataStyle style, IReadOnlyList<PreferenceExample> paired, IReadOnlyList<UnpairedExample> unpaired)
    {
        Origin = origin;
        Format = format;
        Style = style;
        PairedExamples = paired;
        UnpairedExamples = unpaired;
    }

    public static Dataset FromPaired(string origin, IReadOnlyList<PreferenceExample> rows, DataStyle? style = null) =>
        new(origin, DataFormat.Paired, style ?? (rows.Count > 0 && rows[0].Chosen.IsConversational ? DataStyle.Conversational : DataStyle.Text),
            rows, Array.Empty<UnpairedExample>());

    public static Dataset FromUnpaired(string origin, IReadOnlyList<UnpairedExample> rows, DataStyle? style = null) =>
        new(origin, DataFormat.Unpaired, style ?? (rows.Count > 0 && rows[0].Completion.IsConversational ? DataStyle.Conversational : DataStyle.Text),
            Array.Empty<PreferenceExample>(), rows);

    internal Dataset WithReadInfo(bool promptWasImplicit, IReadOnlyList<SkippedRow> skipped, IReadOnlyList<string> notices) =>
        new(Origin, Format, Style, PairedExamples, UnpairedExamples) { PromptWasImplicit = promptWasImplicit, SkippedRows = skipped, Notices = notices };

    /// <summary>The pairs for DPO-family training; unpaired data has no pairs and is an error.</summary>
    public IReadOnlyList<PreferenceExample> ToPaired()
    {
        if (Format != DataFormat.Paired)
            throw new EngineException($"{Origin}: unpaired data cannot train DPO: its rows are (prompt, completion, label); " +
                "DPO-family objectives need a chosen and a rejected completion for each prompt (use KTO for unpaired data)");
        return PairedExamples;
    }

    /// <summary>
    /// Rows for KTO. Paired data becomes two rows per pair, chosen desirable and rejected undesirable (TRL's
    /// unpair_preference_dataset), with a notice saying so. Order: all chosen rows, then all rejected rows, as
    /// TRL's batched map lays them out; the KTO batcher's seeded shuffle then mixes them before microbatches are
    /// cut (without it a microbatch would hold one class only).
    /// </summary>
    public IReadOnlyList<UnpairedExample> ToUnpaired(out string? notice)
    {
        if (Format == DataFormat.Unpaired) { notice = null; return UnpairedExamples; }
        var rows = new List<UnpairedExample>(PairedExamples.Count * 2);
        foreach (var p in PairedExamples) rows.Add(new UnpairedExample(p.Prompt, p.Chosen, true, p.Source));
        foreach (var p in PairedExamples) rows.Add(new UnpairedExample(p.Prompt, p.Rejected, false, p.Source));
        notice = $"{Origin}: paired data converted for KTO: {PairedExamples.Count} pairs became {rows.Count} rows " +
                 $"({PairedExamples.Count} chosen = desirable, {PairedExamples.Count} rejected = undesirable)";
        return rows;
    }

    /// <summary>The unpaired view as a dataset (see <see cref="ToUnpaired"/>).</summary>
    public Dataset AsUnpaired(out string? notice)
    {
        if (Format == DataFormat.Unpaired) { notice = null; return this; }
        var rows = ToUnpaired(out notice);
        return new Dataset(Origin, DataFormat.Unpaired, Style, Array.Empty<PreferenceExample>(), rows)
        {
            PromptWasImplicit = PromptWasImplicit, SkippedRows = SkippedRows, Notices = Notices,
        };
    }

    /// <summary>
    /// A held-out evaluation split: a seeded random choice of round(fraction·n) rows (at least one, and at least
    /// one left for training); both parts keep file order. Split paired data before converting it for KTO so the
    /// two rows of a pair stay on the same side.
    /// </summary>
    public (Dataset Train, Dataset Eval) Split(double evalFraction, int seed)
    {
        if (!(evalFraction > 0 && evalFraction < 1))
            throw new EngineException($"{Origin}: the evaluation fraction must be between 0 and 1 (got {evalFraction})");
        int n = Count;
        if (n < 2) throw new EngineException($"{Origin}: {n} row{(n == 1 ? "" : "s")} cannot be split into training and evaluation sets");
        int evalCount = Math.Clamp((int)Math.Round(evalFraction * n, MidpointRounding.AwayFromZero), 1, n - 1);
        var perm = SeededShuffle.Permutation(n, seed, stream: -1);
        var isEval = new bool[n];
        for (int i = 0; i < evalCount; i++) isEval[perm[i]] = true;
        Dataset Part(bool eval, string suffix)
        {
            var idx = Enumerable.Range(0, n).Where(i => isEval[i] == eval).ToList();
            return new Dataset(Origin + suffix, Format, Style,
                Format == DataFormat.Paired ? idx.Select(i => PairedExamples[i]).ToList() : Array.Empty<PreferenceExample>(),
                Format == DataFormat.Unpaired ? idx.Select(i => UnpairedExamples[i]).ToList() : Array.Empty<UnpairedExample>())
            { PromptWasImplicit = PromptWasImplicit };
        }
        return (Part(false, " (train split)"), Part(true, " (eval split)"));
    }

    public string Describe() =>
        (Format == DataFormat.Paired
            ? PromptWasImplicit ? "paired (chosen, rejected; prompt extracted as their common prefix)" : "paired (prompt, chosen, rejected)"
            : "unpaired (prompt, completion, label)")
        + (Style == DataStyle.Conversational ? ", conversational" : ", text");
}
