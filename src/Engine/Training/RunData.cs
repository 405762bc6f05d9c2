using Engine.Data;
using Engine.Objectives;
using Engine.Tokenization;

namespace Engine.Training;

/// <summary>
/// Files → examples → tokens → batch iterators for one run: reads the training (and eval) data, converts it to
/// the shape the method trains on, renders chat data with the model's template and tokenizes it.
/// </summary>
public static class RunData
{
    public sealed record Prepared(RunBatches Train, RunBatches? Eval, IReadOnlyList<string> Notices, IReadOnlyList<string> DataFiles);

    public static Prepared Prepare(TrainingOptions o, AlignmentMethodInfo method, TextTokenizer tokenizer, int evalBatchSize)
    {
        var notices = new List<string>();
        var files = new List<string> { o.DataPath };
        // SFT also takes TRL's unlabeled prompt-completion rows.
        var readOptions = new DatasetReadOptions { UnlabeledCompletionsAreDesirable = method.DataShape == DataShape.Completions };
        var train = DatasetReader.Read(o.DataPath, readOptions);
        notices.AddRange(train.Notices);
        Dataset? eval = null;
        if (o.EvalDataPath != null)
        {
            eval = DatasetReader.Read(o.EvalDataPath, readOptions);
            notices.AddRange(eval.Notices);
            files.Add(o.EvalDataPath);
        }
        else if (o.EvalFraction > 0)
        {
            (train, eval) = train.Split(o.EvalFraction, (int)o.Seed);
        }
        var settings = Tokenization(o);
        var renderer = ChatRenderer(tokenizer, train, eval);
        var exampleTokenizer = new ExampleTokenizer(tokenizer, settings, renderer);
        var trainBatches = Batches(train, method, exampleTokenizer, o.BatchSize, o.Seed, settings, notices, shuffle: true);
        // Eval batches are shuffled too (seeded): unpaired data converted from pairs lists all chosen rows first, and
        // KTO's mismatched pairs must not come from one-class microbatches.
        var evalBatches = eval is null ? null : Batches(eval, method, exampleTokenizer, evalBatchSize, o.Seed, settings, notices, shuffle: true);
        return new Prepared(trainBatches, evalBatches, notices, files);
    }

    public static TokenizationSettings Tokenization(TrainingOptions o) => new()
    {
        MaxLength = o.MaxLength,
        MaxPromptLength = o.MaxPromptLength,
        TruncationMode = o.TruncationMode switch
        {
            "keep_end" => TruncationMode.KeepEnd,
            "keep_start" => TruncationMode.KeepStart,
            _ => throw new EngineException($"unknown truncation mode '{o.TruncationMode}' (expected keep_end or keep_start)"),
        },
    };

    static IChatRenderer? ChatRenderer(TextTokenizer tokenizer, Dataset train, Dataset? eval)
    {
        bool conversational = train.Style == DataStyle.Conversational || eval?.Style == DataStyle.Conversational;
        if (!conversational) return null;
        return ChatRendering.ForTokenizer(tokenizer, "tokenizer_config.json chat_template")
            ?? throw new EngineException($"{train.Origin}: conversational data needs a chat template, and the model's tokenizer_config.json has none");
    }

    static RunBatches Batches(Dataset data, AlignmentMethodInfo method, ExampleTokenizer tokenizer, int batchSize, long seed,
        TokenizationSettings settings, List<string> notices, bool shuffle)
    {
        var report = new TruncationReport();
        long pad = tokenizer.PadId;
        switch (method.DataShape)
        {
            case DataShape.Paired:
            {
                var pairs = tokenizer.TokenizeAll(data.ToPaired(), report);
                if (pairs.Count == 0) throw new EngineException($"{data.Origin}: no usable rows after tokenization ({report})");
                if (report.Any) notices.Add($"{data.Origin}: {report}");
                return new RunBatches
                {
                    Paired = new PairedBatchIterator(pairs, batchSize, seed, pad, shuffle),
                    Rows = pairs.Count, Truncation = report,
                };
            }
            case DataShape.Unpaired:
            {
                var rows = tokenizer.TokenizeAll(data.ToUnpaired(out var notice), report);
                if (notice != null) notices.Add(notice);
                if (report.Any) notices.Add($"{data.Origin}: {report}");
                return new RunBatches
                {
                    Unpaired = new UnpairedBatchIterator(rows, batchSize, seed, pad, settings.MaxLength, shuffle),
                    Rows = rows.Count, Truncation = report,
                    Labels = (rows.Count(r => r.Desirable), rows.Count(r => !r.Desirable)),
                };
            }
            default:
            {
                // SFT learns the good completions: desirable rows of unpaired data, the chosen side of pairs.
                List<TokenizedUnpaired> rows;
                if (data.Format == DataFormat.Paired)
                    rows = tokenizer.TokenizeAll(data.ToPaired(), report).Select(p => new TokenizedUnpaired(p.Prompt, p.Chosen, true) { Source = p.Source }).ToList();
                else
                {
                    rows = tokenizer.TokenizeAll(data.UnpairedExamples.Where(e => e.Label), report);
                    int dropped = data.UnpairedExamples.Count(e => !e.Label);
                    if (dropped > 0) notices.Add($"{data.Origin}: SFT trains on desirable rows only; {dropped} undesirable rows skipped");
                }
                if (rows.Count == 0) throw new EngineException($"{data.Origin}: no completions to train on");
                if (report.Any) notices.Add($"{data.Origin}: {report}");
                return new RunBatches
                {
                    Completions = new CompletionBatchIterator(rows, batchSize, seed, pad, shuffle),
                    Rows = rows.Count, Truncation = report,
                };
            }
        }
    }
}
