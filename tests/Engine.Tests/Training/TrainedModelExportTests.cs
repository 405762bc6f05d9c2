using Engine.Tests.Gguf;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Training;

/// <summary>A model fine-tuned from a GGUF file by Engine exports back to GGUF and validates in real llama.cpp.</summary>
public class TrainedModelExportTests
{
    [SkippableFact]
    public void TrainFromGgufThenExportAndValidate()
    {
        string gguf = SharedData.Require("models/stories260K/stories260K.gguf");
        LlamaCppRequirement.Require();
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(16, seed: 31));
        var train = CliRunner.Run("train", "--method", "dpo", "--model", gguf, "--data", data, "--out", dir.File("run"),
            "--batch-size", "4", "--max-steps", "4", "--lr", "1e-4", "--no-plots");
        Assert.True(train.ExitCode == 0, train.ToString());
        foreach (var type in new[] { "f32", "q8_0" })
        {
            var export = CliRunner.Run("export", "--model", dir.File("run/final"), "--out", dir.File($"trained-{type}.gguf"), "--type", type);
            Assert.True(export.ExitCode == 0, export.ToString());
            Assert.True(File.Exists(dir.File($"trained-{type}.gguf")));
        }
    }
}
