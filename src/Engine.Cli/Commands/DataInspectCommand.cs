using System.Globalization;
using System.Text.Json;
using Engine.Data;
using Engine.Models;

namespace Engine.Cli.Commands;

public sealed class DataInspectCommand : ICliCommand
{
    public string Name => "data inspect";
    public string Summary => "Describe a preference dataset: format, rows, lengths, label balance, truncation.";
    public string Usage => "data inspect FILE(.jsonl|.json|.parquet) [--model DIR] [--max-length N] [--max-prompt-length N] " +
                           "[--truncation-mode keep_end|keep_start] [--label-threshold X] [--rating-column NAME] " +
                           "[--desirable-weight W] [--undesirable-weight W] [--json]";

    public int Run(CliArgs args)
    {
        if (args.Positionals.Count == 0) throw new UsageException("data inspect: give the dataset file");
        string file = args.Positionals[0];
        string? modelDir = args.String("model");
        int? maxLength = args.Int("max-length", min: 2);
        int? maxPromptLength = args.Int("max-prompt-length", min: 1);
        string truncation = args.Choice("truncation-mode", "keep_end", "keep_end", "keep_start");
        double? threshold = args.Double("label-threshold");
        string? ratingColumn = args.String("rating-column");
        double desirableWeight = args.Double("desirable-weight") ?? 1.0;
        double undesirableWeight = args.Double("undesirable-weight") ?? 1.0;
        bool json = args.Flag("json");
        args.EnsureAllUsed(allowedPositionals: 1);
        if (modelDir is null && (maxLength is not null || maxPromptLength is not null || args.GivenNames.Contains("truncation-mode")))
            throw new UsageException("data inspect: --max-length, --max-prompt-length and --truncation-mode count tokens and need --model");
        if (ratingColumn is not null && threshold is null)
            throw new UsageException("data inspect: --rating-column needs --label-threshold");
        if (desirableWeight <= 0 || undesirableWeight <= 0)
            throw new UsageException("data inspect: --desirable-weight and --undesirable-weight must be positive");

        var dataset = DatasetReader.Read(file, new DatasetReadOptions { LabelThreshold = threshold, RatingColumn = ratingColumn });
        ExampleTokenizer? tokenizer = null;
        if (modelDir is not null)
        {
            var parts = ModelLoader.OpenParts(modelDir);
            parts.Weights.Dispose();
            var tok = parts.Tokenizer ?? throw new EngineException($"{modelDir}: no tokenizer found (expected tokenizer.model or tokenizer.json)");
            // TRL's defaults (1024 / 512); a smaller --max-length alone keeps the prompt limit at half of it, as those defaults do.
            var settings = new TokenizationSettings
            {
                MaxLength = maxLength ?? TokenizationSettings.Default.MaxLength,
                MaxPromptLength = maxPromptLength ?? (maxLength is int l ? Math.Min(TokenizationSettings.Default.MaxPromptLength!.Value, l / 2) : TokenizationSettings.Default.MaxPromptLength),
                TruncationMode = truncation == "keep_start" ? TruncationMode.KeepStart : TruncationMode.KeepEnd,
            };
            var renderer = dataset.Style == DataStyle.Conversational ? ChatRendering.ForTokenizer(tok, modelDir) : null;
            tokenizer = new ExampleTokenizer(tok, settings, renderer);
        }
        var inspection = DatasetInspection.Run(dataset, tokenizer, desirableWeight, undesirableWeight);
        if (json) WriteJson(inspection);
        else WriteText(inspection);
        return 0;
    }

    static void WriteText(DatasetInspection r)
    {
        var d = r.Dataset;
        Line("file", d.Origin);
        Line("format", d.Describe());
        Line("rows", $"{d.Count}" + (d.SkippedRows.Count > 0 ? $" ({d.SkippedRows.Count} skipped)" : ""));
        Line("empty completions", $"{r.EmptyCompletionRows} (skipped)");
        foreach (var (field, stats) in r.Chars) Line(field + " chars", stats.ToString());
        if (r.Tokens is { } tokens)
            foreach (var (field, stats) in tokens) Line(field + " tokens", stats.ToString());
        if (r.Truncation is { } t)
            Line("truncation", $"{r.Settings!.Describe()}: {t.PromptsTruncated} prompts " +
                (t.PromptsOverMaxLength > 0 ? $"({t.PromptsOverMaxLength} longer than max_length alone) " : "") +
                $"and {t.CompletionsTruncated} completions would be truncated, {t.RowsDropped} rows dropped");
        else Line("truncation", "give --model to count tokens and truncation");
        if (d.Format == DataFormat.Paired)
        {
            if (r.IdenticalPairs > 0) Line("identical pairs", $"{r.IdenticalPairs} (chosen = rejected: no preference signal)");
            Line("for KTO", $"{d.Count * 2} rows ({d.Count} desirable, {d.Count} undesirable) after conversion");
        }
        else
        {
            var b = r.Balance;
            double share = b.Desirable + b.Undesirable == 0 ? 0 : 100.0 * b.Desirable / (b.Desirable + b.Undesirable);
            Line("labels", $"{b.Desirable} desirable ({share.ToString("0.0", CultureInfo.InvariantCulture)}%), {b.Undesirable} undesirable");
            Line("KTO balance", (b.Warning is { } w ? "warning: " + w : $"λ_D·n_D / (λ_U·n_U) = {b.Ratio.ToString("0.###", CultureInfo.InvariantCulture)}, within [1, 4/3]"));
        }
        foreach (var n in d.Notices) Line("note", n);
    }

    static void Line(string label, string value) => Console.WriteLine($"{label + ":",-20}{value}");

    static void WriteJson(DatasetInspection r)
    {
        var d = r.Dataset;
        using var stream = Console.OpenStandardOutput();
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
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
            w.WriteString("truncation_mode", r.Settings.TruncationMode == TruncationMode.KeepEnd ? "keep_end" : "keep_start");
            w.WriteNumber("prompts_truncated", t.PromptsTruncated);
            w.WriteNumber("prompts_over_max_length", t.PromptsOverMaxLength);
            w.WriteNumber("completions_truncated", t.CompletionsTruncated);
            w.WriteNumber("rows_dropped", t.RowsDropped);
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
        w.WriteEndObject();
        w.Flush();
        stream.WriteByte((byte)'\n');
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
