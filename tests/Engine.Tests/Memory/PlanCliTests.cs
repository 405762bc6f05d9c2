using System.Text.Json.Nodes;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Memory;

/// <summary>`engine plan` and `engine train --vram` as a user runs them. `plan --measure` reads the process allocator,
/// so the class runs alone: another test's tensors freed during the measured step moved the ratio from 0.96–1.03 to 0.89.</summary>
[Collection("process allocator")]
public class PlanCliTests
{
    [Fact]
    public void JsonPlanForMinerva()
    {
        var r = CliRunner.Run("plan", "--model", "minerva-350m", "--method", "dpo", "--seq-len", "1024", "--vram", "8GiB", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(351_573_120, j["parameters"]!.GetValue<long>());
        Assert.True(j["fits"]!.GetValue<bool>());
        Assert.True(j["micro_batch"]!.GetValue<int>() >= 8);
        Assert.InRange(j["peak_bytes"]!.GetValue<long>(), 1L << 30, 8L << 30);
        Assert.NotEmpty(j["components"]!.AsArray());
        Assert.Contains(j["alternatives"]!.AsArray(), a => !a!["fits"]!.GetValue<bool>() && a["short_by_bytes"]!.GetValue<long>() > 0);
    }

    [Fact]
    public void TextPlanSaysWhatDoesNotFitAndByHowMuch()
    {
        var r = CliRunner.Run("plan", "--model", "llama-3.2-1b", "--method", "dpo", "--seq-len", "1024", "--vram", "4GiB");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("does not fit: even the smallest configuration", r.Stdout);
        Assert.Contains("more than 4.00 GiB", r.Stdout);
    }

    [Theory]
    [InlineData("8XB", "--vram: cannot read '8XB'")]
    [InlineData("0GiB", "--vram: the size must be positive")]
    public void BadVramIsAnInputError(string vram, string message)
    {
        var r = CliRunner.Run("plan", "--model", "minerva-350m", "--method", "dpo", "--seq-len", "1024", "--vram", vram);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
    }

    [Fact]
    public void UnknownModelAndMethodAreRejected()
    {
        var r = CliRunner.Run("plan", "--model", "no-such-model", "--method", "dpo", "--seq-len", "64", "--vram", "8GiB");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("neither a model folder nor a preset", r.Stderr);
        r = CliRunner.Run("plan", "--model", "bench-25m", "--method", "ppo", "--seq-len", "64", "--vram", "8GiB");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--method must be one of dpo, kto, sft, orpo, simpo", r.Stderr);
    }

    [Fact]
    public void EveryMethodIsPlannedByItsOwnCost()
    {
        // ORPO runs chosen + rejected through the policy and needs no reference; SFT one row per example.
        string[] Plan(string method) => new[] { "plan", "--model", "bench-25m", "--method", method, "--seq-len", "64", "--vram", "8GiB", "--batch-size", "2",
            "--precision", "f32", "--checkpointing", "off", "--logprob", "fused", "--optimizer-state-dtype", "f32", "--json" };
        var orpo = CliRunner.Run(Plan("orpo"));
        var sft = CliRunner.Run(Plan("sft"));
        Assert.Equal(0, orpo.ExitCode);
        Assert.Equal(0, sft.ExitCode);
        var o = System.Text.Json.Nodes.JsonNode.Parse(orpo.Stdout)!;
        var f = System.Text.Json.Nodes.JsonNode.Parse(sft.Stdout)!;
        Assert.Equal("orpo", (string)o["method"]!);
        Assert.Equal("none", (string)o["reference"]!);
        Assert.True((long)o["peak_bytes"]! > (long)f["peak_bytes"]!, "two sequences per pair must need more memory than one per row");
    }

    // Full fine-tuning with the fused layer kernels (the default) in both precisions, and the composites; bf16 on the CPU
    // saves the attention probabilities (explicit softmax).
    [SkippableTheory]
    [InlineData("f32", "fused"), InlineData("bf16", "fused"), InlineData("bf16", "torch")]
    public void MeasuredPeakOnStoriesIsWithinTenPercentOfThePrediction(string precision, string kernels)
    {
        string stories = SharedData.Require(SharedData.Stories);
        var r = CliRunner.RunAlone("plan", "--model", stories, "--method", "dpo", "--seq-len", "128", "--vram", "1GiB", "--device", "cpu",
            "--micro-batch", "4", "--precision", precision, "--kernels", kernels, "--checkpointing", "off", "--logprob", "fused", "--ref-mode", "cached",
            "--measure", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var m = JsonNode.Parse(r.Stdout)!["measured"]!;
        double ratio = m["ratio"]!.GetValue<double>();
        Assert.True(ratio is > 0.9 and < 1.1, r.Stdout);
        Assert.True(JsonNode.Parse(r.Stdout)!["measured_peak_bytes"]!.GetValue<long>() > 0);
    }

    [SkippableFact]
    public void TrainWithVramUsesThePlan()
    {
        string stories = SharedData.Require(SharedData.Stories);
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(16, seed: 3));
        var r = CliRunner.Run("train", "--method", "dpo", "--model", stories, "--data", data, "--out", dir.File("run"), "--max-steps", "1",
            "--max-length", "64", "--vram", "1GiB", "--target-batch", "8", "--precision", "f32", "--no-plots");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("memory plan for 1.00 GiB:", r.Stdout);
        Assert.Contains(", f32", r.Stdout); // the user's --precision is kept
        Assert.True(File.Exists(Path.Combine(dir.File("run"), "metrics.jsonl")));
    }

    [SkippableFact]
    public void TrainWithATinyVramFailsWithTheShortfall()
    {
        string stories = SharedData.Require(SharedData.Stories);
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(8, seed: 3));
        var r = CliRunner.Run("train", "--method", "dpo", "--model", stories, "--data", data, "--out", dir.File("run"), "--max-steps", "1",
            "--vram", "1MiB", "--no-plots");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no configuration fits", r.Stderr);
        Assert.False(Directory.Exists(dir.File("run/final")));
    }
}
