using Engine.Tests.Infrastructure;

namespace Engine.Tests.Tokenization;

public class TokenizerCliTests
{
    [SkippableFact]
    public void InfoPrintsTheTokenizerLine()
    {
        var r = CliRunner.Run("info", "--model", SharedData.Require(SharedData.Stories));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("tokenizer:      SentencePiece, 512 tokens, bos 1, eos 2, add_bos True", r.Stdout);
    }
}
