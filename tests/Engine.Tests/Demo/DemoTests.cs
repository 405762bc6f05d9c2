using Engine.Demo;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Demo;

public class DemoTests
{
    [Fact]
    public void WilsonIntervalMatchesHandWorkedValues()
    {
        // 8 of 10 at z = 1.96: centre (0.8 + 3.8416/20)/1.38416 = 0.71680, half-width 1.96·√(0.016 + 3.8416/400)/1.38416 = 0.22658.
        var (low, high) = DemoPipeline.WilsonInterval(8, 10);
        Assert.Equal(0.4902, low, 3);
        Assert.Equal(0.9434, high, 3);
        Assert.Equal((0.0, 1.0), DemoPipeline.WilsonInterval(0, 0));
        Assert.Equal(0.0, DemoPipeline.WilsonInterval(0, 50).Low);
    }

    [Theory]
    [InlineData(" She smiled and shared it with a friend.", true)]
    [InlineData(" He got angry and threw it at a dog.", false)]
    [InlineData("Then she was SAD.", false)]
    [InlineData("the badge was shiny", true)] // whole words only
    public void LexiconJudge(string completion, bool desirable) => Assert.Equal(desirable, Engine.Demo.LexiconJudge.IsDesirable(completion));

    [Fact]
    public void EveryCorpusEndingIsWellFormedAndLabelledByTheJudgeAsGenerated()
    {
        foreach (var story in StoryCorpus.Generate(200, seed: 3))
        {
            Assert.True(StoryCorpus.IsWellFormed(story.Completion), story.Completion);
            Assert.Equal(story.Kind, Engine.Demo.LexiconJudge.IsDesirable(story.Completion));
        }
        Assert.False(StoryCorpus.IsWellFormed(" She took god cand yeand."));
    }

    [Fact]
    public void DemoTokenizerRoundTripsTheCorpus()
    {
        var tok = DemoTokenizer.Create(StoryCorpus.Alphabet());
        foreach (var story in StoryCorpus.Generate(50, seed: 4))
        {
            string text = story.Prompt + story.Completion;
            var ids = tok.Encode(text); // BOS first: decoding then drops the dummy-prefix space, as HF does
            Assert.Equal(1, ids[0]);
            Assert.DoesNotContain(ids, id => tok.TokenTypes[id] == Engine.Tokenization.TokenType.Byte); // no byte fallback needed
            Assert.Equal(text, tok.Decode(ids));
        }
    }

    [Fact]
    public void SmallDemoRunsEndToEndAndWritesTheReport()
    {
        using var dir = new TempDir();
        var result = new DemoPipeline(new DemoOptions
        {
            OutputDir = dir.File("demo"), CorpusSize = 1600, SftSteps = 250, SamplePrompts = 48, SamplesPerPrompt = 4,
            EvalPrompts = 16, EvalSamplesPerPrompt = 2, AlignSteps = 8, BatchSize = 8,
        }).Run();
        Assert.Equal(new[] { "base", "KTO", "DPO" }, result.Judgements.Select(j => j.Model));
        Assert.All(result.Judgements, j => Assert.Equal(32, j.Total));
        Assert.Equal(0.0, result.Judgements[0].KlToBase);
        Assert.Equal(0.0, result.HeldOut["base"]["rewards/margins"], 6);
        string report = File.ReadAllText(result.ReportPath);
        Assert.Contains("| KTO |", report);
        Assert.Contains("desirable-rate.png", report);
        Assert.True(File.Exists(Path.Combine(dir.File("demo"), "desirable-rate.png")));
        Assert.True(File.Exists(Path.Combine(dir.File("demo"), "dpo", "final", "model.safetensors")));
    }
}
