using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Tests.Gguf;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Models;

/// <summary>
/// Every command a user runs on a family's model, in order, on its small random-weight folder
/// (<see cref="FamilyModels"/>): info, generate, train with DPO, KTO and SFT, eval of the trained model against the
/// original, export of the trained model to GGUF F32 (validated in llama.cpp by the command) and generate from that file.
/// The numerics behind each step are checked elsewhere (FamilyParityTests, FamilyTrainingTests, FamilyGgufTests); this
/// checks that the commands accept each family and agree with one another.
/// </summary>
public class FamilyCommandLineTests
{
    public static TheoryData<string> Families => new(FamilyModels.All);

    static CliRunner.Result Ok(params string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, $"engine {string.Join(' ', args)}\n{r}");
        return r;
    }

    static string Generate(string model) =>
        Ok("generate", "--model", model, "--prompt", "Once upon a time", "--max-new-tokens", "6", "--temperature", "0").Stdout.TrimEnd('\n');

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void EveryCommandRunsOnTheFamily(string family)
    {
        var m = FamilyModels.Get(family);
        LlamaCppRequirement.Require();
        using var dir = new TempDir();
        string modelType = JsonNode.Parse(File.ReadAllText(m.ConfigPath))!["model_type"]!.GetValue<string>();

        Assert.Contains(modelType, Ok("info", "--model", m.Directory).Stdout);
        Assert.NotEqual("", Generate(m.Directory)); // the continuation alone (random weights: arbitrary tokens)

        var pairs = StoryPreferences.Pairs(4, seed: 41);
        string paired = StoryPreferences.WritePaired(dir.File("pairs.jsonl"), pairs);
        string unpaired = StoryPreferences.WriteUnpaired(dir.File("unpaired.jsonl"), pairs);
        string sft = dir.File("sft.jsonl");
        File.WriteAllLines(sft, pairs.Select(p => JsonSerializer.Serialize(new { prompt = p.Prompt, completion = p.Chosen })));
        foreach (var (method, data) in new[] { ("dpo", paired), ("kto", unpaired), ("sft", sft) })
        {
            Ok("train", "--method", method, "--model", m.Directory, "--data", data, "--out", dir.File(method), "--batch-size", "2",
                "--max-steps", "1", "--max-length", "48", "--lr", "1e-3", "--no-plots");
            var config = JsonNode.Parse(File.ReadAllText(dir.File($"{method}/final/config.json")))!;
            Assert.Equal(modelType, config["model_type"]!.GetValue<string>());
        }

        string trained = dir.File("dpo/final");
        var eval = JsonNode.Parse(Ok("eval", "--method", "dpo", "--model", trained, "--ref", m.Directory, "--data", paired,
            "--batch-size", "2", "--max-length", "48", "--json").Stdout)!;
        double loss = eval["loss"]!.GetValue<double>();
        // One step at a high rate moved the policy away from its reference: the loss is finite and no longer ln 2.
        Assert.True(double.IsFinite(loss) && Math.Abs(loss - Math.Log(2)) > 1e-6, $"{family}: eval loss {loss}");

        string gguf = dir.File("trained.gguf");
        Assert.Contains("result: PASS", Ok("export", "--model", trained, "--out", gguf, "--type", "f32").Stdout);
        // The F32 file imports back to the same model: the same greedy continuation as the folder it came from.
        Assert.Equal(Generate(trained), Generate(gguf));
    }
}
