using System.Globalization;

namespace Engine.Data;

/// <summary>
/// Turns raw rows into examples: detects the format from the first row's columns, checks each field's type
/// and words errors with the row's file and line. Columns other than the recognised ones are ignored.
/// </summary>
internal sealed class RowInterpreter(string origin, DatasetReadOptions options)
{
    enum Shape { Paired, UnpairedLabel, UnpairedRating, UnpairedUnlabeled }

    Shape? _shape;
    bool _hasPromptColumn;
    string? _ratingColumn;
    DataStyle? _style;
    RowSource? _styleSource;
    bool _implicitPrompt;
    bool _promptColumnIgnored;
    int _desirableFromRatings, _undesirableFromRatings;
    readonly List<PreferenceExample> _paired = new();
    readonly List<UnpairedExample> _unpaired = new();
    readonly List<SkippedRow> _skipped = new();

    public void Add(IRawRow row)
    {
        _shape ??= DetectShape(row);
        if (_shape == Shape.Paired) AddPaired(row);
        else AddUnpaired(row);
    }

    public Dataset Finish()
    {
        if (_shape is null) throw new EngineException($"{origin}: the file has no rows");
        var notices = new List<string>();
        if (_promptColumnIgnored)
            notices.Add($"{origin}: the 'prompt' column was not used: chosen/rejected are {(_style == DataStyle.Conversational ? "conversations" : "text")} " +
                        "that contain the prompt, so it was taken as their common prefix (as TRL's maybe_extract_prompt does)");
        if (_shape == Shape.UnpairedRating)
            notices.Add($"{origin}: labels from '{_ratingColumn}' ≥ {options.LabelThreshold!.Value.ToString(CultureInfo.InvariantCulture)}: " +
                        $"{_desirableFromRatings} desirable, {_undesirableFromRatings} undesirable");
        foreach (var group in _skipped.GroupBy(s => s.Reason))
            notices.Add($"{origin}: {group.Count()} row{(group.Count() == 1 ? "" : "s")} skipped: {group.Key} (first at {group.First().Source})");
        int kept = _shape == Shape.Paired ? _paired.Count : _unpaired.Count;
        if (kept == 0)
            throw new EngineException($"{origin}: no usable rows ({_skipped.Count} skipped: {string.Join("; ", _skipped.Select(s => s.Reason).Distinct())})");
        var style = _style ?? DataStyle.Text;
        var dataset = _shape == Shape.Paired ? Dataset.FromPaired(origin, _paired, style) : Dataset.FromUnpaired(origin, _unpaired, style);
        return dataset.WithReadInfo(_implicitPrompt, _skipped, notices);
    }

    Shape DetectShape(IRawRow row)
    {
        var cols = row.Columns;
        bool Has(string c) => cols.Contains(c);
        string found = cols.Count == 0 ? "none" : string.Join(", ", cols);
        _hasPromptColumn = Has("prompt");
        if (Has("chosen") && Has("rejected")) return Shape.Paired;
        if (Has("chosen") != Has("rejected") && !Has("completion"))
            throw new EngineException($"{origin}: has '{(Has("chosen") ? "chosen" : "rejected")}' but no '{(Has("chosen") ? "rejected" : "chosen")}' column " +
                                      $"(paired rows need chosen and rejected, with or without prompt; columns found: {found})");
        if (Has("completion"))
        {
            if (!Has("prompt"))
                throw new EngineException($"{origin}: has 'completion' but no 'prompt' column (unpaired rows are prompt, completion, label; columns found: {found})");
            string? ratingColumn = options.RatingColumn ?? DatasetReadOptions.DefaultRatingColumns.FirstOrDefault(Has);
            if (Has("label"))
            {
                if (options.LabelThreshold is not null)
                    throw new EngineException($"{origin}: the rows already have a boolean 'label'; a label threshold applies only to data with a rating column instead");
                return Shape.UnpairedLabel;
            }
            if (options.LabelThreshold is not null)
            {
                if (ratingColumn is null || !Has(ratingColumn))
                    throw new EngineException($"{origin}: a label threshold needs a numeric rating column " +
                                              $"({(options.RatingColumn is null ? "'rating' or 'score'" : $"'{options.RatingColumn}'")}); columns found: {found}");
                _ratingColumn = ratingColumn;
                return Shape.UnpairedRating;
            }
            if (options.UnlabeledCompletionsAreDesirable) return Shape.UnpairedUnlabeled;
            throw new EngineException($"{origin}: prompt/completion rows need a boolean 'label' column (KTO's unpaired format)" +
                (ratingColumn is not null && Has(ratingColumn) ? $"; to label them from the '{ratingColumn}' column, give a label threshold (--label-threshold)" : "") +
                $"; columns found: {found}");
        }
        if (Has("messages") || Has("conversations") || Has("text"))
            throw new EngineException($"{origin}: this looks like supervised fine-tuning data (columns found: {found}), not preference data; " +
                                      "expected columns {prompt, chosen, rejected}, {chosen, rejected} or {prompt, completion, label}");
        throw new EngineException($"{origin}: unknown dataset format: columns found: {found}; " +
                                  "expected {prompt, chosen, rejected}, {chosen, rejected} or {prompt, completion, label}");
    }

    void AddPaired(IRawRow row)
    {
        var chosen = Required(row, "chosen");
        var rejected = Required(row, "rejected");
        if (chosen.IsConversational != rejected.IsConversational)
            throw new EngineException($"{row.Source}: 'chosen' is {StyleWord(chosen)} but 'rejected' is {StyleWord(rejected)}");
        ExampleText? prompt = _hasPromptColumn ? Required(row, "prompt") : null;
        if (prompt is not null && prompt.IsConversational != chosen.IsConversational)
        {
            // TRL's maybe_extract_prompt: a prompt column of the other style (ultrafeedback_binarized: a text prompt,
            // conversational chosen/rejected that repeat it) is ignored and the prompt is extracted.
            _promptColumnIgnored = true;
            prompt = null;
        }
        if (prompt is null)
        {
            _implicitPrompt = true;
            if (chosen.IsConversational)
            {
                var (p, c, r) = PromptExtraction.Split(chosen.Messages!, rejected.Messages!);
                if (p.Count == 0)
                    throw new EngineException($"{row.Source}: 'chosen' and 'rejected' differ from their first message, so there is no common prompt to extract " +
                                              "(implicit-prompt rows repeat the prompt's messages at the start of both)");
                (prompt, chosen, rejected) = (ExampleText.Conversation(p), ExampleText.Conversation(c), ExampleText.Conversation(r));
            }
            else
            {
                var (p, c, r) = PromptExtraction.Split(chosen.Text!, rejected.Text!);
                (prompt, chosen, rejected) = (ExampleText.Plain(p), ExampleText.Plain(c), ExampleText.Plain(r));
            }
        }
        CheckStyle(row.Source, chosen);
        if (chosen.IsBlank || rejected.IsBlank)
        {
            _skipped.Add(new SkippedRow(row.Source, chosen.IsBlank && rejected.IsBlank ? "empty chosen and rejected completions" : chosen.IsBlank ? "empty chosen completion" : "empty rejected completion"));
            return;
        }
        _paired.Add(new PreferenceExample(prompt, chosen, rejected, row.Source));
    }

    void AddUnpaired(IRawRow row)
    {
        var prompt = Required(row, "prompt");
        var completion = Required(row, "completion");
        if (prompt.IsConversational != completion.IsConversational)
            throw new EngineException($"{row.Source}: 'prompt' is {StyleWord(prompt)} but 'completion' is {StyleWord(completion)}");
        CheckStyle(row.Source, completion);
        bool label;
        if (_shape == Shape.UnpairedLabel)
        {
            var v = Value(row, "label");
            if (v is not DataValue.Bool b)
                throw new EngineException($"{row.Source}: 'label' must be true or false (got {v.Describe()})");
            label = b.Value;
        }
        else if (_shape == Shape.UnpairedUnlabeled) label = true;
        else
        {
            var v = Value(row, _ratingColumn!);
            if (v is not DataValue.Number n || !double.IsFinite(n.Value))
                throw new EngineException($"{row.Source}: '{_ratingColumn}' must be a number to be compared with the label threshold (got {v.Describe()})");
            label = n.Value >= options.LabelThreshold!.Value;
        }
        if (completion.IsBlank)
        {
            _skipped.Add(new SkippedRow(row.Source, "empty completion"));
            return;
        }
        if (_shape == Shape.UnpairedRating) { if (label) _desirableFromRatings++; else _undesirableFromRatings++; }
        _unpaired.Add(new UnpairedExample(prompt, completion, label, row.Source));
    }

    void CheckStyle(RowSource source, ExampleText sample)
    {
        var style = sample.IsConversational ? DataStyle.Conversational : DataStyle.Text;
        if (_style is null) { _style = style; _styleSource = source; return; }
        if (_style != style)
            throw new EngineException($"{source}: this row is {StyleWord(sample)} but earlier rows (from {_styleSource}) are " +
                                      $"{(_style == DataStyle.Conversational ? "conversations" : "plain text")}; a dataset must use one format");
    }

    static DataValue Value(IRawRow row, string column)
    {
        if (!row.TryGet(column, out var v))
            throw new EngineException($"{row.Source}: missing '{column}' (columns in this row: {string.Join(", ", row.Columns)})");
        return v;
    }

    static ExampleText Required(IRawRow row, string column) => Value(row, column) switch
    {
        DataValue.Text t => ExampleText.Plain(t.Value),
        DataValue.Messages m => ExampleText.Conversation(m.Value),
        DataValue.Null => throw new EngineException($"{row.Source}: '{column}' is null"),
        var other => throw new EngineException($"{row.Source}: '{column}' must be a string or a list of {{role, content}} messages (got {other.Describe()})"),
    };

    static string StyleWord(ExampleText t) => t.IsConversational ? "a list of messages" : "plain text";
}
