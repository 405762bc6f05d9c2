using Engine.Tests.Infrastructure;

namespace Engine.Tests.Training;

/// <summary>A new run never silently writes over a previous one; --overwrite-output-dir removes only what a run wrote.</summary>
public class OutputDirTests
{
    static string Stories => SharedData.Require(SharedData.Stories);

    static string[] Train(string data, string outDir, params string[] extra) =>
        new[] { "train", "--method", "dpo", "--model", Stories, "--data", data, "--out", outDir, "--batch-size", "4", "--lr", "5e-4", "--max-steps", "1" }
            .Concat(extra).ToArray();

    /// <summary>Every file under a folder with its size and write time, to show nothing changed.</summary>
    static List<string> Snapshot(string dir) => Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
        .Select(f => $"{Path.GetRelativePath(dir, f)} {new FileInfo(f).Length} {File.GetLastWriteTimeUtc(f).Ticks}").ToList();

    [SkippableFact]
    public void PreviousRunIsRefusedThenReplacedKeepingOtherFiles()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(16, seed: 51));
        string run = dir.File("run");
        var first = CliRunner.Run(Train(data, run, "--save-steps", "1", "--report-to", "tensorboard")); // plots on: loss.png and others
        Assert.True(first.ExitCode == 0, first.ToString());
        string oldEvents = Assert.Single(Directory.GetFiles(Path.Combine(run, "runs")));
        Assert.True(File.Exists(Path.Combine(run, "loss.png")));
        // The user's own files, beside and inside the run's folders.
        File.WriteAllText(Path.Combine(run, "notes.txt"), "mine");
        Directory.CreateDirectory(Path.Combine(run, "data"));
        File.WriteAllText(Path.Combine(run, "data", "extra.jsonl"), "mine");
        File.WriteAllText(Path.Combine(run, "runs", "README"), "mine");
        var before = Snapshot(run);

        var refused = CliRunner.Run(Train(data, run));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains($"{run} already holds a run (metrics.jsonl, checkpoint-1, final)", refused.Stderr);
        Assert.Contains($"--resume {run}", refused.Stderr);
        Assert.Contains("--overwrite-output-dir", refused.Stderr);
        Assert.Equal(before, Snapshot(run));

        var replaced = CliRunner.Run(Train(data, run, "--overwrite-output-dir", "--no-plots"));
        Assert.True(replaced.ExitCode == 0, replaced.ToString());
        Assert.Contains("--overwrite-output-dir: removed the previous run's", replaced.Stderr);
        Assert.False(Directory.Exists(Path.Combine(run, "checkpoint-1")));
        Assert.False(File.Exists(oldEvents));
        Assert.False(File.Exists(Path.Combine(run, "loss.png")));
        Assert.Single(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")));
        Assert.True(Directory.Exists(Path.Combine(run, "final")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(run, "notes.txt")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(run, "data", "extra.jsonl")));
        Assert.Equal("mine", File.ReadAllText(Path.Combine(run, "runs", "README")));
        Assert.Single(Directory.GetFiles(run, "reference-logps-*.safetensors")); // a cache keyed by what it depends on: kept and reused
    }

    [Theory]
    [InlineData("final", "is not a model Engine wrote")]
    [InlineData("checkpoint-3", "is not a checkpoint Engine wrote")]
    public void OverwriteRefusesFoldersEngineDidNotWrite(string folder, string expected)
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(4, seed: 52));
        string run = dir.File("run");
        Directory.CreateDirectory(Path.Combine(run, folder));
        File.WriteAllText(Path.Combine(run, folder, "mine.txt"), "mine");
        File.WriteAllText(Path.Combine(run, "metrics.jsonl"), "{\"step\":1}\n");
        var before = Snapshot(run);
        var r = CliRunner.Run("train", "--method", "dpo", "--model", dir.File("no-model"), "--data", data, "--out", run, "--overwrite-output-dir");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.Equal(before, Snapshot(run)); // checked before anything is removed
    }

    [Fact]
    public void OverwriteAndResumeContradict()
    {
        using var dir = new TempDir();
        var r = CliRunner.Run("train", "--method", "dpo", "--model", dir.File("m"), "--data", dir.File("d.jsonl"), "--out", dir.File("run"),
            "--overwrite-output-dir", "--resume", dir.File("run"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--overwrite-output-dir and --resume contradict each other", r.Stderr);
    }

    [Fact]
    public void OverwriteReplacesALoraRunsAdapterOnlyFinalButNotAStrangeFolder()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        string final = Path.Combine(run, "final");
        Directory.CreateDirectory(final);
        File.WriteAllText(Path.Combine(run, "metrics.jsonl"), "{}\n");
        File.WriteAllText(Path.Combine(run, "notes.txt"), "mine");
        File.WriteAllText(Path.Combine(final, "adapter_model.safetensors"), "x");
        // Without either config file, final is not Engine's: nothing is removed.
        var e = Assert.Throws<EngineException>(() => Engine.Training.RunFolder.PrepareNewRun(run, overwrite: true));
        Assert.Contains("neither a model nor an adapter", e.Message);
        Assert.True(File.Exists(Path.Combine(run, "metrics.jsonl")));
        // With PEFT's adapter_config.json (what a LoRA run writes there) it is the run's own and goes.
        File.WriteAllText(Path.Combine(final, "adapter_config.json"), "{}");
        var removed = Engine.Training.RunFolder.PrepareNewRun(run, overwrite: true);
        Assert.Contains(final, removed);
        Assert.False(Directory.Exists(final));
        Assert.True(File.Exists(Path.Combine(run, "notes.txt")));
    }
}
