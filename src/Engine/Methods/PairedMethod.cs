using Engine.Data;

namespace Engine.Methods;

/// <summary>Methods that train on preference pairs (DPO, ORPO, SimPO): their data preparation and batches.</summary>
public abstract class PairedMethod : AlignmentMethod
{
    public override DataShape Shape => DataShape.Paired;
    public override string ExampleNoun => "pairs";

    public override PreparedSplit Prepare(Dataset data, ExampleTokenizer tokenizer, Batching batching, ObjectiveOptions options)
    {
        var report = new TruncationReport();
        var pairs = tokenizer.TokenizeAll(data.ToPaired(), report);
        if (pairs.Count == 0) throw new EngineException($"{data.Origin}: no usable rows after tokenization ({report})");
        var notices = report.Any ? new[] { $"{data.Origin}: {report}" } : Array.Empty<string>();
        return new PreparedSplit(new PairedBatchIterator(pairs, batching.MicroBatch, batching.Seed, tokenizer.PadId, batching.Shuffle, shard: batching.Shard), report, notices);
    }

    public override IBatchSource<ITrainBatch> Synthetic(SyntheticShape shape) =>
        new PairedBatchIterator(SyntheticExamples.Pairs(shape), shape.MicroBatch, shape.Seed, 0, shuffle: false);

    /// <summary>Chosen rows of a pair are keyed (i, 0), rejected (i, 1).</summary>
    protected static ReferenceQuery Query(PairedBatch batch)
    {
        var keys = new long[2 * batch.Pairs];
        for (int i = 0; i < batch.Pairs; i++)
        {
            keys[i] = SequenceKey(batch.RowIndices[i], 0);
            keys[batch.Pairs + i] = SequenceKey(batch.RowIndices[i], 1);
        }
        return new ReferenceQuery(batch.Sequences, keys);
    }

    /// <summary>The policy's scores of the chosen and the rejected rows (one forward over both).</summary>
    protected static (Objectives.SequenceScores Chosen, Objectives.SequenceScores Rejected) Score(PairedBatch batch, StepContext c)
    {
        var scores = SequenceScorer.Score(c.Policy, batch.Sequences, c.Head);
        return (SequenceScorer.Slice(scores, 0, batch.Pairs), SequenceScorer.Slice(scores, batch.Pairs, batch.Pairs));
    }
}
