using System.Text.Json.Nodes;
using Engine.Tests.Infrastructure;
using Engine.Training;

namespace Engine.Tests.Training;

/// <summary>--save-total-limit, --metric-for-best-model and --greater-is-better.</summary>
public class CheckpointRetentionTests
{
    static string Stories => SharedData.Require(SharedData.Stories);

    static string[] Train(string data, string outDir, params string[] extra) =>
        new[] { "train", "--method", "dpo", "--model", Stories, "--data", data, "--out", outDir, "--batch-size", "4", "--lr", "5e-4", "--no-plots" }
            .Concat(extra).ToArray();

    static IEnumerable<string> Names(params int[] steps) => steps.Select(s => $"checkpoint-{s}");

    static List<string> Kept(string run) =>
        Directory.GetDirectories(run, "checkpoint-*").Select(Path.GetFileName).OrderBy(n => int.Parse(n!["checkpoint-".Length..])).ToList()!;

    // The HF Trainer documents its rotation: with save_total_limit=5 "the four last checkpoints will always be retained
    // alongside the best model"; with save_total_limit=1 "two checkpoints are saved: the last one and the best one".
    [Theory]
    [InlineData(5, 2, 10, new[] { 1, 3, 4, 5, 6 })] // best (2) kept with the 4 newest
    [InlineData(1, 2, 10, new[] { 1, 3, 4, 5, 6, 7, 8, 9 })] // newest and best
    [InlineData(1, 10, 10, new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 })] // the best is the newest: one checkpoint
    [InlineData(3, null, 10, new[] { 1, 2, 3, 4, 5, 6, 7 })] // no best: the 3 newest
    [InlineData(2, null, 4, new[] { 1, 2, 3, 5, 6, 7, 8, 9 })] // resumed from checkpoint-3: the new checkpoint-4 counts as the newest, the stale 5..10 as older
    public void RotationFollowsTheHfTrainer(int limit, int? best, int newest, int[] doomed)
    {
        var all = Enumerable.Range(1, 10).Select(s => $"checkpoint-{s}").ToList();
        var result = CheckpointRetention.Doomed(all, limit, $"checkpoint-{newest}", best is int b ? $"checkpoint-{b}" : null);
        Assert.Equal(Names(doomed), result);
    }

    [SkippableFact]
    public void BestCheckpointByEvalMetricIsKeptWithTheNewest()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(40, seed: 41));
        string run = dir.File("run");
        // Eval loss falls as the policy learns, so "greater is better" makes an early checkpoint the best one.
        var r = CliRunner.Run(Train(data, run, "--max-steps", "5", "--save-steps", "1", "--eval-steps", "1", "--eval-fraction", "0.2",
            "--save-total-limit", "2", "--metric-for-best-model", "eval_loss", "--greater-is-better"));
        Assert.True(r.ExitCode == 0, r.ToString());

        var evalLoss = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(o => o.ContainsKey("eval_loss")).ToDictionary(o => o["step"]!.GetValue<int>(), o => o["eval_loss"]!.GetValue<double>());
        Assert.Equal(new[] { 1, 2, 3, 4, 5 }, evalLoss.Keys.OrderBy(k => k));
        int bestStep = evalLoss.MaxBy(kv => kv.Value).Key;
        var expected = bestStep == 5 ? new[] { 4, 5 } : new[] { bestStep, 5 };
        Assert.Equal(Names(expected), Kept(run));

        var state = CheckpointStore.ReadState(Path.Combine(run, "checkpoint-5"));
        Assert.Equal($"checkpoint-{bestStep}", state.BestCheckpoint);
        Assert.Equal(evalLoss[bestStep], state.BestMetric!.Value, 6);
        Assert.Equal(5 - expected.Length, r.Stderr.Split('\n').Count(l => l.StartsWith("removed ") && l.Contains("--save-total-limit 2")));
    }

    [SkippableFact]
    public void OnlyThisRunsCheckpointsAreDeleted()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(32, seed: 42));
        string run = dir.File("run");
        var first = CliRunner.Run(Train(data, run, "--max-steps", "2", "--save-steps", "1"));
        Assert.True(first.ExitCode == 0, first.ToString());

        // Another run's checkpoint under Engine's naming, a user's folder that looks like one, and a user's file.
        string other = Path.Combine(run, "checkpoint-7");
        CopyDirectory(Path.Combine(run, "checkpoint-1"), other);
        var otherState = JsonNode.Parse(File.ReadAllText(Path.Combine(other, "trainer_state.json")))!.AsObject();
        otherState["Step"] = 7;
        otherState["RunId"] = "another-run";
        File.WriteAllText(Path.Combine(other, "trainer_state.json"), otherState.ToJsonString());
        Directory.CreateDirectory(Path.Combine(run, "checkpoint-100"));
        File.WriteAllText(Path.Combine(run, "checkpoint-100", "notes.txt"), "mine");
        File.WriteAllText(Path.Combine(run, "notes.txt"), "mine");

        var resumed = CliRunner.Run(Train(data, run, "--max-steps", "4", "--save-steps", "1", "--save-total-limit", "1",
            "--resume", Path.Combine(run, "checkpoint-2")));
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(new[] { "checkpoint-4", "checkpoint-7", "checkpoint-100" }, Kept(run));
        Assert.True(File.Exists(Path.Combine(other, "trainer_state.json")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(run, "checkpoint-100", "notes.txt")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(run, "notes.txt")));
        Assert.Empty(Directory.GetDirectories(run, ".checkpoint-*"));
    }

    [Theory]
    [InlineData(new[] { "--metric-for-best-model", "banana" }, "unknown metric 'banana'")]
    [InlineData(new[] { "--metric-for-best-model", "loss", "--save-steps", "3", "--eval-steps", "2", "--eval-fraction", "0.2" }, "must be a positive multiple of --eval-steps")]
    [InlineData(new[] { "--metric-for-best-model", "loss", "--save-steps", "2", "--eval-steps", "2" }, "give an eval split")]
    [InlineData(new[] { "--greater-is-better" }, "--greater-is-better goes with --metric-for-best-model")]
    public void BestModelOptionsAreCheckedBeforeTraining(string[] extra, string expected)
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(8, seed: 43));
        // Checked before the model is read, so no model is needed.
        var r = CliRunner.Run(new[] { "train", "--method", "dpo", "--model", dir.File("no-model"), "--data", data, "--out", dir.File("run") }.Concat(extra).ToArray());
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.False(Directory.Exists(dir.File("run")));
    }

    static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyDirectory(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
