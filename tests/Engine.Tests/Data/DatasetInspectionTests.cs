using Engine.Data;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Data;

public class DatasetInspectionTests
{
    [Fact]
    public void Counts_tokens_and_what_the_limits_would_truncate()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "p.jsonl",
            """{"prompt": "abcdefghij", "chosen": "xy", "rejected": "xyz"}""",
            """{"prompt": "ab", "chosen": "x", "rejected": "x"}""");
        var ds = DatasetReader.Read(path);
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 10, MaxPromptLength = 4 });
        var r = DatasetInspection.Run(ds, tok);
        // Row 1: prompt BOS+10 = 11, chosen 3, rejected 4 → total 15 > 10: prompt cut to 4, room 6, nothing else cut.
        Assert.Equal((3, 11), (r.Tokens!["prompt"].Min, r.Tokens["prompt"].Max));
        Assert.Equal(15, r.Tokens["total"].Max);
        Assert.Equal((1, 0, 0), (r.Truncation!.PromptsTruncated, r.Truncation.CompletionsTruncated, r.Truncation.RowsDropped));
        Assert.Equal(10, r.Chars["prompt"].Max);
        Assert.Equal(1, r.IdenticalPairs);
        Assert.Equal((2, 2), (r.Balance.Desirable, r.Balance.Undesirable));
    }

    [Fact]
    public void Without_a_tokenizer_only_characters_are_counted()
    {
        var ds = Dataset.FromUnpaired("u", new[]
        {
            new UnpairedExample(ExampleText.Plain("p"), ExampleText.Plain("abc"), true, new RowSource("u", 1, 1)),
            new UnpairedExample(ExampleText.Plain("p"), ExampleText.Plain("a"), false, new RowSource("u", 2, 2)),
        });
        var r = DatasetInspection.Run(ds);
        Assert.Null(r.Tokens);
        Assert.Null(r.Truncation);
        Assert.Equal(2.0, r.Chars["completion"].Mean, 9);
        Assert.Null(r.Balance.Warning);
    }
}
