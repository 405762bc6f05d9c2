using Engine.Data;
using Engine.Tests.Infrastructure;
using Parquet.Schema;

namespace Engine.Tests.Data;

/// <summary>File → dataset → token ids → batches, as the trainer chains them.</summary>
public class PipelineTests
{
    static string ConversationalPairs(TempDir dir)
    {
        var schema = new ParquetSchema(DataFiles.MessageColumn("prompt"), DataFiles.MessageColumn("chosen"), DataFiles.MessageColumn("rejected"));
        return DataFiles.Parquet(dir, "pairs.parquet", schema, new List<IDictionary<string, object?>>
        {
            new Dictionary<string, object?> { ["prompt"] = DataFiles.Messages(("user", "Hi")), ["chosen"] = DataFiles.Messages(("assistant", "Hey")), ["rejected"] = DataFiles.Messages(("assistant", "No")) },
            new Dictionary<string, object?> { ["prompt"] = DataFiles.Messages(("user", "2+2")), ["chosen"] = DataFiles.Messages(("assistant", "4")), ["rejected"] = DataFiles.Messages(("assistant", "5")) },
        });
    }

    static long[] Row(torch.Tensor t, int row) => t[row].data<long>().ToArray();

    [Fact]
    public void Conversational_parquet_pairs_become_a_dpo_batch()
    {
        using var dir = new TempDir();
        var pairs = DatasetReader.Read(ConversationalPairs(dir)).ToPaired();
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings(), new ChatMlRenderer());
        var report = new TruncationReport();
        var tokenized = tok.TokenizeAll(pairs, report);
        var it = new PairedBatchIterator(tokenized, microBatchSize: 2, seed: 1, padId: tok.PadId, shuffle: false);
        using var batch = it.Batches(1).Single();

        // Row 0 = prompt 1 + chosen 1: "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" then "Hey<|im_end|>\n"; the
        // template writes every special token, so no BOS or EOS is added (TRL's apply_chat_template tokenization).
        int[] prompt = [3, .. CharTokenizer.Ids("user\nHi"), 4, .. CharTokenizer.Ids("\n"), 3, .. CharTokenizer.Ids("assistant\n")];
        int[] chosen = [.. CharTokenizer.Ids("Hey"), 4, .. CharTokenizer.Ids("\n")];
        var ids = Row(batch.Sequences.InputIds, 0);
        Assert.Equal(prompt.Concat(chosen).Select(i => (long)i), ids.Take(prompt.Length + chosen.Length));
        var labels = Row(batch.Sequences.Labels, 0);
        Assert.All(labels.Take(prompt.Length), l => Assert.Equal(SequenceBatch.IgnoreIndex, l));
        Assert.Equal(chosen.Select(i => (long)i), labels.Skip(prompt.Length).Take(chosen.Length));
        // Row 2 is the rejected completion of pair 0: "No<|im_end|>\n".
        Assert.Equal(CharTokenizer.Id('N'), Row(batch.Sequences.Labels, 2)[prompt.Length]);
        Assert.Equal(4, batch.Sequences.Rows);
        // Each completion is its text + <|im_end|> + "\n": Hey 5, No 4, 4 3, 5 3.
        Assert.Equal(5 + 4 + 3 + 3, batch.Sequences.CompletionTokens);
    }

    [Fact]
    public void Paired_data_for_kto_is_converted_with_a_notice_and_batched_with_mismatched_pairs()
    {
        using var dir = new TempDir();
        var ds = DatasetReader.Read(ConversationalPairs(dir));
        var rows = ds.ToUnpaired(out var notice);
        Assert.Contains("2 pairs became 4 rows", notice);
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 64, MaxPromptLength = 32 }, new ChatMlRenderer());
        var tokenized = tok.TokenizeAll(rows, new TruncationReport());
        var it = new UnpairedBatchIterator(tokenized, microBatchSize: 4, seed: 9, padId: tok.PadId, maxLength: 64);
        using var batch = it.Batches(1).Single();
        Assert.Equal((2, 2), (batch.DesirableCount, batch.UndesirableCount));
        // Each mismatched row i ends with the completion of row (i − 1) mod 4 of the same batch.
        var order = it.EpochBatches(0)[0];
        for (int i = 0; i < 4; i++)
        {
            var own = tokenized[order[i]];
            var other = tokenized[order[(i + 3) % 4]];
            var expected = own.Prompt.Concat(other.Completion).Select(x => (long)x).ToArray();
            Assert.Equal(expected, Row(batch.MismatchedSequences.InputIds, i).Take(expected.Length));
        }
    }
}
