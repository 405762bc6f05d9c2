using System.Globalization;
using System.Text.Json;
using Engine.Data;
using Engine.Cli.Options;
using Engine.Models;
using Engine.Training;

namespace Engine.Cli.Commands;

public sealed record DataInspectArgs(StepSettings Step, double? LabelThreshold = null, string? RatingColumn = null, bool Json = false, int Show = 0);

public sealed class DataInspectCommand : CliCommand<DataInspectArgs>
{
    public override string Name => "data inspect";
    public override string Summary => "Describe a preference dataset: format, rows, lengths, label balance, truncation.";
    public override string? Positional => "FILE(.jsonl|.json|.parquet)";
    protected override DataInspectArgs Defaults => new(new StepSettings());

    static IEnumerable<CliOption<DataInspectArgs>> Step(IEnumerable<CliOption<StepSettings>> o) =>
        o.Lift<DataInspectArgs>(a => a.Step, (a, s) => a with { Step = s });

    protected override IReadOnlyList<CliOption<DataInspectArgs>> Options { get; } =
        Step(new[] { StepOptions.Model.With(help: "count tokens and truncation with this model's tokenizer (a folder of tokenizer files will do)", required: false) }
            .Concat(StepOptions.Lengths).Concat(new[] { StepOptions.DesirableWeight, StepOptions.UndesirableWeight }))
        .Concat(new[]
        {
            Opt<DataInspectArgs>.OptionalDouble("label-threshold", "unpaired rows rated above X are desirable (with --rating-column or a rating/score column)",
                a => a.LabelThreshold, (a, v) => a with { LabelThreshold = v }),
            Opt<DataInspectArgs>.String("rating-column", "the column holding each row's rating", a => a.RatingColumn, (a, v) => a with { RatingColumn = v }, valueName: "NAME"),
            Opt<DataInspectArgs>.Int("show", "show the first N rows as the trainer sees them: prompt and completion ids and their text (needs --model)",
                a => a.Show, (a, v) => a with { Show = v }, min: 0),
            Opt<DataInspectArgs>.Flag("json", "print the report as JSON", a => a.Json, (a, v) => a with { Json = v }),
        }).ToList();

    protected override int Execute(Parsed<DataInspectArgs> parsed, CliContext context)
    {
        var a = parsed.Value;
        if (parsed.Positionals.Count == 0) throw new UsageException("data inspect: give the dataset file");
        string file = parsed.Positionals[0];
        string? modelDir = string.IsNullOrEmpty(a.Step.Model) ? null : a.Step.Model;
        if (modelDir is null && StepOptions.Lengths.Any(o => parsed.Given.Contains(o.Name)))
            throw new UsageException("data inspect: --max-length, --max-prompt-length and --truncation-mode count tokens and need --model");
        if (modelDir is null && a.Show > 0)
            throw new UsageException("data inspect: --show tokenizes rows and needs --model");
        if (a.RatingColumn is not null && a.LabelThreshold is null)
            throw new UsageException("data inspect: --rating-column needs --label-threshold");
        double desirableWeight = a.Step.Objective.DesirableWeight ?? 1.0, undesirableWeight = a.Step.Objective.UndesirableWeight ?? 1.0;
        if (desirableWeight <= 0 || undesirableWeight <= 0)
            throw new UsageException("data inspect: --desirable-weight and --undesirable-weight must be positive");

        var dataset = DatasetReader.Read(file, new DatasetReadOptions { LabelThreshold = a.LabelThreshold, RatingColumn = a.RatingColumn });
        ExampleTokenizer? tokenizer = null;
        if (modelDir is not null)
        {
            var tok = TokenizerSource.Load(modelDir);
            // The same limits `train` uses (StepSettings), so the truncation reported is what training will do.
            var renderer = dataset.Style == DataStyle.Conversational ? ChatRendering.ForTokenizer(tok, modelDir) : null;
            tokenizer = new ExampleTokenizer(tok, a.Step.Tokenization, renderer);
        }
        var inspection = DatasetInspection.Run(dataset, tokenizer, desirableWeight, undesirableWeight, a.Show);
        if (a.Json) WriteJson(inspection, context.Out);
        else WriteText(inspection, context.Out);
        return 0;
    }

    static void WriteText(DatasetInspection r, TextWriter w)
    {
        var d = r.Dataset;
        Line(w, "file", d.Origin);
        Line(w, "format", d.Describe());
        Line(w, "rows", $"{d.Count}" + (d.SkippedRows.Count > 0 ? $" ({d.SkippedRows.Count} skipped)" : ""));
        Line(w, "empty completions", $"{r.EmptyCompletionRows} (skipped)");
        foreach (var (field, stats) in r.Chars) Line(w, field + " chars", stats.ToString());
        if (r.Tokens is { } tokens)
            foreach (var (field, stats) in tokens) Line(w, field + " tokens", stats.ToString());
        if (r.Truncation is { } t)
            Line(w, "truncation", $"{r.Settings!.Describe()}: {t.PromptsTruncated} prompts " +
                (t.PromptsOverMaxLength > 0 ? $"({t.PromptsOverMaxLength} longer than max_length alone) " : "") +
                $"and {t.CompletionsTruncated} completions would be truncated, {t.RowsDropped} rows dropped" +
                (t.BoundaryMerges > 0 ? $"; {t.BoundaryMerges} rows merge tokens across the prompt/completion boundary (the merged token counts as completion)" : ""));
        else Line(w, "truncation", "give --model to count tokens and truncation");
        if (d.Format == DataFormat.Paired)
        {
            if (r.IdenticalPairs > 0) Line(w, "identical pairs", $"{r.IdenticalPairs} (chosen = rejected: no preference signal)");
            Line(w, "for KTO", $"{d.Count * 2} rows ({d.Count} desirable, {d.Count} undesirable) after conversion");
        }
        else
        {
            var b = r.Balance;
            double share = b.Desirable + b.Undesirable == 0 ? 0 : 100.0 * b.Desirable / (b.Desirable + b.Undesirable);
            Line(w, "labels", $"{b.Desirable} desirable ({share.ToString("0.0", CultureInfo.InvariantCulture)}%), {b.Undesirable} undesirable");
            Line(w, "KTO balance", (b.Warning is { } warning ? "warning: " + warning : $"λ_D·n_D / (λ_U·n_U) = {b.Ratio.ToString("0.###", CultureInfo.InvariantCulture)}, within [1, 4/3]"));
        }
        foreach (var n in d.Notices) Line(w, "note", n);
        foreach (var row in r.Shown)
        {
            w.WriteLine();
            w.WriteLine($"row {row.Source}" + (row.Desirable is bool label ? (label ? " (desirable)" : " (undesirable)") : "") +
                        (row.Dropped ? ": dropped by the length limits (ids before truncation)" : ""));
            foreach (var part in row.Parts)
            {
                Line(w, "  " + part.Name + " ids", $"[{string.Join(", ", part.Ids)}] ({part.Ids.Length} tokens)");
                Line(w, "  " + part.Name + " text", JsonSerializer.Serialize(part.Text, RelaxedJson));
            }
        }
    }

    static readonly JsonSerializerOptions RelaxedJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static void Line(TextWriter w, string label, string value) => w.WriteLine($"{label + ":",-20}{value}");

    static void WriteJson(DatasetInspection r, TextWriter output)
    {
        var d = r.Dataset;
        using var stream = new MemoryStream();
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = RelaxedJson.Encoder });
        w.WriteStartObject();
        w.WriteString("file", d.Origin);
        w.WriteString("format", d.Format == DataFormat.Paired ? "paired" : "unpaired");
        w.WriteString("style", d.Style == DataStyle.Conversational ? "conversational" : "text");
        w.WriteBoolean("implicit_prompt", d.PromptWasImplicit);
        w.WriteNumber("rows", d.Count);
        w.WriteNumber("skipped_rows", d.SkippedRows.Count);
        w.WriteNumber("empty_completions", r.EmptyCompletionRows);
        WriteStats(w, "chars", r.Chars);
        if (r.Tokens is { } tokens) WriteStats(w, "tokens", tokens);
        if (r.Truncation is { } t)
        {
            w.WriteStartObject("truncation");
            w.WriteNumber("max_length", r.Settings!.MaxLength ?? 0);
            w.WriteNumber("max_prompt_length", r.Settings.MaxPromptLength ?? 0);
            w.WriteString("truncation_mode", Engine.Util.Spelling.Of(r.Settings.TruncationMode));
            w.WriteNumber("prompts_truncated", t.PromptsTruncated);
            w.WriteNumber("prompts_over_max_length", t.PromptsOverMaxLength);
            w.WriteNumber("completions_truncated", t.CompletionsTruncated);
            w.WriteNumber("rows_dropped", t.RowsDropped);
            w.WriteNumber("boundary_merges", t.BoundaryMerges);
            w.WriteEndObject();
        }
        if (d.Format == DataFormat.Paired) w.WriteNumber("identical_pairs", r.IdenticalPairs);
        w.WriteStartObject("labels");
        w.WriteNumber("desirable", r.Balance.Desirable);
        w.WriteNumber("undesirable", r.Balance.Undesirable);
        if (double.IsFinite(r.Balance.Ratio)) w.WriteNumber("kto_weighted_ratio", r.Balance.Ratio);
        else w.WriteNull("kto_weighted_ratio");
        if (r.Balance.Warning is { } warning) w.WriteString("warning", warning);
        else w.WriteNull("warning");
        w.WriteEndObject();
        w.WriteStartArray("notices");
        foreach (var n in d.Notices) w.WriteStringValue(n);
        w.WriteEndArray();
        if (r.Shown.Count > 0)
        {
            w.WriteStartArray("shown");
            foreach (var row in r.Shown)
            {
                w.WriteStartObject();
                w.WriteString("source", row.Source.ToString());
                if (row.Desirable is bool label) w.WriteBoolean("label", label);
                w.WriteBoolean("dropped", row.Dropped);
                foreach (var part in row.Parts)
                {
                    w.WriteStartObject(part.Name);
                    w.WriteStartArray("ids");
                    foreach (int id in part.Ids) w.WriteNumberValue(id);
                    w.WriteEndArray();
                    w.WriteString("text", part.Text);
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
        w.Flush();
        output.WriteLine(System.Text.Encoding.UTF8.GetString(stream.ToArray()));
    }

    static void WriteStats(Utf8JsonWriter w, string name, IReadOnlyDictionary<string, LengthStats> stats)
    {
        w.WriteStartObject(name);
        foreach (var (field, s) in stats)
        {
            w.WriteStartObject(field);
            w.WriteNumber("min", s.Min);
            w.WriteNumber("mean", Math.Round(s.Mean, 3));
            w.WriteNumber("median", s.Median);
            w.WriteNumber("p95", s.P95);
            w.WriteNumber("max", s.Max);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}
