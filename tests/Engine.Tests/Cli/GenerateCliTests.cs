using Engine.Tests.Infrastructure;
using Engine.Tokenization;

namespace Engine.Tests.Cli;

/// <summary>`engine generate` end to end: tokenizer, model and decoding against the stories260K reference.</summary>
public class GenerateCliTests
{
    [SkippableFact]
    public void GreedyFromEmptyPromptPrintsTheReferenceText()
    {
        string model = SharedData.Require(SharedData.Stories);
        var r = CliRunner.Run("generate", "--model", model, "--prompt", "", "--max-new-tokens", "25", "--temperature", "0");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(SharedData.StoriesGreedyText + "\n", r.Stdout.ReplaceLineEndings("\n"));
    }

    [SkippableFact]
    public void GreedyFromOnceUponATimeContinuesLikeTheReference()
    {
        string model = SharedData.Require(SharedData.Stories);
        // The prompt encodes to BOS + the first four reference tokens (checked with our encoder, not assumed),
        // so greedy decoding must continue with the remaining 21 reference tokens.
        var tok = TokenizerLoader.Load(model);
        Assert.Equal(new[] { 1 }.Concat(SharedData.StoriesGreedyIds.Take(4)), tok.Encode("Once upon a time"));
        var r = CliRunner.Run("generate", "--model", model, "--prompt", "Once upon a time", "--max-new-tokens", "21", "--temperature", "0");
        Assert.True(r.ExitCode == 0, r.ToString());
        string expected = SharedData.StoriesGreedyText[" Once upon a time".Length..];
        Assert.Equal(", there was a little girl named Lily. She loved to play outside", expected);
        Assert.Equal(expected + "\n", r.Stdout.ReplaceLineEndings("\n"));
    }

    [SkippableFact]
    public void BrokenTokenizerIsABadInputError()
    {
        string model = SharedData.Require(SharedData.Stories);
        using var dir = new TempDir();
        foreach (var f in Directory.GetFiles(model)) File.Copy(f, dir.File(Path.GetFileName(f)));
        File.WriteAllBytes(dir.File("tokenizer.model"), new byte[] { 0x0A, 0xFF, 0xFF, 0xFF, 0x0F });
        var r = CliRunner.Run("generate", "--model", dir.Path, "--prompt", "hi", "--max-new-tokens", "2", "--temperature", "0");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("tokenizer.model", r.Stderr);
        Assert.Contains("error:", r.Stderr);
    }
}
