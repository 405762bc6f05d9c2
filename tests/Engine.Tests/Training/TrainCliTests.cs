using System.Text.Json.Nodes;
using Engine.Tests.Infrastructure;
using Engine.Training;

namespace Engine.Tests.Training;

/// <summary>`engine train` as a user runs it: crashes, resumes and bad input.</summary>
public class TrainCliTests
{
    static string Stories => SharedData.Require(SharedData.Stories);

    static string[] Train(string data, string outDir, params string[] extra) =>
        new[] { "train", "--method", "dpo", "--model", Stories, "--data", data, "--out", outDir, "--batch-size", "4", "--lr", "5e-4",
                "--lr-scheduler", "constant", "--no-plots" }.Concat(extra).ToArray();

    [SkippableFact]
    public void KilledWhileWritingACheckpointResumesFromThePreviousOne()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(32, seed: 21));
        string run = dir.File("run");
        var crash = CliRunner.RunWith(null, TimeSpan.FromMinutes(5),
            new Dictionary<string, string> { [CheckpointStore.CrashHookVariable] = "4" },
            Train(data, run, "--max-steps", "6", "--save-steps", "2", "--save-total-limit", "1"));
        Assert.NotEqual(0, crash.ExitCode);
        // --save-total-limit deletes an old checkpoint only once the new one is complete.
        Assert.True(Directory.Exists(Path.Combine(run, "checkpoint-2")), crash.ToString());
        Assert.False(Directory.Exists(Path.Combine(run, "checkpoint-4")));
        Assert.False(Directory.Exists(Path.Combine(run, "final")));
        Assert.NotEmpty(Directory.GetDirectories(run, ".checkpoint-4.tmp-*")); // the half-written one, never renamed

        var resumed = CliRunner.Run(Train(data, run, "--max-steps", "6", "--save-steps", "2", "--save-total-limit", "1", "--resume", run));
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(new[] { "checkpoint-6" }, Directory.GetDirectories(run, "checkpoint-*").Select(Path.GetFileName));
        Assert.True(Directory.Exists(Path.Combine(run, "final")));
        Assert.Empty(Directory.GetDirectories(run, ".checkpoint-*.tmp-*"));
        var steps = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["step"]!.GetValue<int>()).ToList();
        Assert.Equal(new[] { 1, 2, 3, 4, 5, 6 }, steps); // 3-4 of the crashed run are dropped; the resumed run appends from 3
    }

    [SkippableFact]
    public void ProfilePrintsEachOpClassPerStepAndOnlyWhenAsked()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(8, seed: 5));
        var r = CliRunner.Run(Train(data, dir.File("run"), "--max-steps", "2", "--precision", "bf16", "--profile"));
        Assert.True(r.ExitCode == 0, r.ToString());
        var lines = r.Stdout.Split('\n');
        int header = Array.FindIndex(lines, l => l.StartsWith("profile: time per training step by op class"));
        Assert.True(header >= 0, r.Stdout);
        var rows = lines.Skip(header + 2).TakeWhile(l => l.StartsWith("  ")).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        var classes = new[] { "matmul", "attention", "norm", "activation", "rope", "head", "optimizer", "conversion", "other" };
        Assert.Equal(classes.Order(), rows.Select(c => c[0]).Order());
        var ms = rows.ToDictionary(c => c[0], c => double.Parse(c[1], System.Globalization.CultureInfo.InvariantCulture));
        // Every step multiplies matrices, runs attention and updates the weights; the shares add up to the whole.
        Assert.True(ms["matmul"] > 0 && ms["attention"] > 0 && ms["optimizer"] > 0, r.Stdout);
        Assert.Equal(100, rows.Sum(c => double.Parse(c[2].TrimEnd('%'), System.Globalization.CultureInfo.InvariantCulture)), 0.5);

        var plain = CliRunner.Run(Train(data, dir.File("run2"), "--max-steps", "1"));
        Assert.True(plain.ExitCode == 0, plain.ToString());
        Assert.DoesNotContain("profile:", plain.Stdout);
    }

    [SkippableFact]
    public void UnpairedDataForDpoFailsWithoutWritingAFinalModel()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WriteUnpaired(dir.File("u.jsonl"), StoryPreferences.Pairs(8, seed: 1));
        var r = CliRunner.Run(Train(data, dir.File("run"), "--max-steps", "2"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("unpaired data cannot train DPO", r.Stderr);
        Assert.False(Directory.Exists(dir.File("run/final")));
    }

    [SkippableFact]
    public void PairedDataForKtoIsConvertedWithANotice()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(8, seed: 2));
        var args = Train(data, dir.File("run"), "--max-steps", "1");
        args[2] = "kto";
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("paired data converted for KTO", r.Stderr);
    }

    [SkippableFact]
    public void MalformedJsonNamesFileAndLine()
    {
        using var dir = new TempDir();
        string data = dir.File("bad.jsonl");
        File.WriteAllLines(data, new[] { """{"prompt": "a", "chosen": "b", "rejected": "c"}""", """{"prompt": "a", "chosen": """ });
        var r = CliRunner.Run(Train(data, dir.File("run"), "--max-steps", "1"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"{data}:2", r.Stderr);
        Assert.False(Directory.Exists(dir.File("run/final")));
    }

    [SkippableFact]
    public void KtoMicrobatchOfOneIsRejected()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WriteUnpaired(dir.File("u.jsonl"), StoryPreferences.Pairs(8, seed: 3));
        var args = Train(data, dir.File("run"), "--max-steps", "1");
        args[2] = "kto";
        args[Array.IndexOf(args, "--batch-size") + 1] = "1";
        var r = CliRunner.Run(args);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("kto needs a micro-batch of at least 2", r.Stderr);
    }

    [Theory]
    [InlineData("--method", "ppo", "must be one of")]
    [InlineData("--loss-type", "banana", "--loss-type (dpo): unknown value 'banana'")]
    [InlineData("--lr-scheduler", "step", "--lr-scheduler must be one of constant, linear, cosine (got 'step')")]
    [InlineData("--bogus", "1", "unknown option --bogus")]
    public void BadFlagsAreNamed(string flag, string value, string expected)
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(4, seed: 4));
        var args = new List<string> { "train", "--method", "dpo", "--model", "/nonexistent", "--data", data, "--out", dir.File("run") };
        int i = args.IndexOf(flag);
        if (i >= 0) args[i + 1] = value; else { args.Add(flag); args.Add(value); }
        var r = CliRunner.Run(args.ToArray());
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
    }

    [SkippableFact]
    public void NonFiniteStepsAreSkippedThenTheRunStops()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(32, seed: 5));
        // An absurd learning rate blows the weights up after the first update; every later loss is non-finite.
        var args = Train(data, dir.File("run"), "--max-steps", "20", "--max-grad-norm", "0", "--max-nonfinite", "3");
        args[Array.IndexOf(args, "--lr") + 1] = "1e30";
        var r = CliRunner.Run(args);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("consecutive steps had a non-finite loss or gradient", r.Stderr);
        Assert.False(Directory.Exists(dir.File("run/final")));
        var rows = File.ReadAllLines(dir.File("run/metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(3, rows.Count(row => row.ContainsKey("skipped")));
    }

    [SkippableFact]
    public void ConfigFileSuppliesOptionsAndFlagsWin()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(8, seed: 6));
        string config = dir.File("run.toml");
        File.WriteAllText(config, $"method = \"dpo\"\nmodel = \"{Stories}\"\ndata = \"{data}\"\nmax_steps = 2\nbatch_size = 4\nbeta = 0.2\nlr = 1e-4\nno_plots = true\n");
        var r = CliRunner.Run("train", "--config", config, "--out", dir.File("run"), "--max-steps", "1");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Single(File.ReadAllLines(dir.File("run/metrics.jsonl")));
        File.AppendAllText(config, "batchsize = 3\n");
        var bad = CliRunner.Run("train", "--config", config, "--out", dir.File("run2"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("unknown key batchsize", bad.Stderr);
    }
}
