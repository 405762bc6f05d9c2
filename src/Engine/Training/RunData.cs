using Engine.Data;
using Engine.Methods;
using Engine.Tokenization;

namespace Engine.Training;

/// <summary>
/// Files → examples → tokens → batches for one run: reads the training (and eval) data, renders chat data with the
/// model's template, and hands each split to the method, which tokenizes it into its own batches.
/// </summary>
public static class RunData
{
    public sealed record Prepared(PreparedSplit Train, PreparedSplit? Eval, IReadOnlyList<string> Notices, IReadOnlyList<string> DataFiles);

    /// <param name="shard">this rank's part of every global micro-batch; every rank reads and tokenizes the whole data, so
    /// dataset-wide checks (KTO's class balance) and the seeded order are the same on every rank</param>
    public static Prepared Prepare(TrainingOptions o, TextTokenizer tokenizer, DataShard? shard = null)
    {
        var method = o.Step.Method;
        var notices = new List<string>();
        var files = new List<string> { o.DataPath };
        var train = DatasetReader.Read(o.DataPath, method.ReadOptions);
        notices.AddRange(train.Notices);
        Dataset? eval = null;
        if (o.EvalDataPath != null)
        {
            eval = DatasetReader.Read(o.EvalDataPath, method.ReadOptions);
            notices.AddRange(eval.Notices);
            files.Add(o.EvalDataPath);
        }
        else if (o.EvalFraction > 0)
        {
            (train, eval) = train.Split(o.EvalFraction, (int)o.Seed);
        }
        var renderer = ChatRenderer(tokenizer, train, eval);
        var exampleTokenizer = new ExampleTokenizer(tokenizer, o.Step.Tokenization, renderer);
        var batching = new Batching(o.Step.MicroBatch, o.Seed) { Shard = shard ?? DataShard.Whole };
        var trainSplit = method.Prepare(train, exampleTokenizer, batching, o.Step.Objective);
        notices.AddRange(trainSplit.Notices);
        // Eval batches are shuffled too (seeded): unpaired data converted from pairs lists all chosen rows first, and
        // KTO's mismatched pairs must not come from one-class micro-batches.
        var evalSplit = eval is null ? null : method.Prepare(eval, exampleTokenizer, batching, o.Step.Objective);
        if (evalSplit != null) notices.AddRange(evalSplit.Notices);
        return new Prepared(trainSplit, evalSplit, notices, files);
    }

    /// <summary>The model's chat template when either split is conversational; an error when it has none.</summary>
    public static IChatRenderer? ChatRenderer(TextTokenizer tokenizer, Dataset train, Dataset? eval)
    {
        bool conversational = train.Style == DataStyle.Conversational || eval?.Style == DataStyle.Conversational;
        if (!conversational) return null;
        return ChatRendering.ForTokenizer(tokenizer, "tokenizer_config.json chat_template")
            ?? throw new EngineException($"{train.Origin}: conversational data needs a chat template, and the model's tokenizer_config.json has none");
    }
}
