using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Engine.Methods;
using Engine.Tests.Infrastructure;
using Engine.Training;

namespace Engine.Tests.Training;

/// <summary>Ctrl-C and SIGTERM sent to a real `engine train` process.</summary>
public class StopSignalTests
{
    const int SIGINT = 2, SIGTERM = 15, SIGCONT = 18, SIGSTOP = 19;

    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int sig);

    static void Send(CliRunner.Running p, int signal) =>
        Assert.True(kill(p.Process.Id, signal) == 0, $"kill({p.Process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");

    static string Stories => SharedData.Require(SharedData.Stories);

    static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    static string[] Train(string data, string outDir, params string[] extra) =>
        new[] { "train", "--method", "dpo", "--model", Stories, "--data", data, "--out", outDir, "--batch-size", "4", "--lr", "5e-4",
                "--lr-scheduler", "constant", "--no-plots" }.Concat(extra).ToArray();

    static List<int> Steps(string run) => File.ReadAllLines(Path.Combine(run, MetricsLog.FileName))
        .Select(l => JsonNode.Parse(l)!["step"]!.GetValue<int>()).ToList();

    /// <summary>Waits until the run has logged <paramref name="rows"/> rows (it is training, the signal handlers are in place).</summary>
    static void WaitForRows(CliRunner.Running p, string run, int rows)
    {
        string metrics = Path.Combine(run, MetricsLog.FileName);
        var deadline = DateTime.UtcNow + Patience;
        while (!(File.Exists(metrics) && File.ReadAllLines(metrics).Length >= rows))
        {
            if (p.Process.HasExited) Assert.Fail($"engine train exited early: {p.Wait(TimeSpan.Zero)}");
            if (DateTime.UtcNow > deadline) Assert.Fail($"no {rows} metric rows within {Patience}");
            Thread.Sleep(100);
        }
    }

    static int StoppedStep(CliRunner.Result r, string signal)
    {
        var m = Regex.Match(r.Stderr, $@"stopped by {signal} after step (\d+); checkpoint: (\S+)");
        Assert.True(m.Success, r.ToString());
        return int.Parse(m.Groups[1].Value);
    }

    [SkippableFact]
    public void SigintThenSigtermEachStopAfterAStepWithACheckpointAndTheRunResumes()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(32, seed: 61));
        string run = dir.File("run");

        int k1;
        using (var p = CliRunner.Start(null, new Dictionary<string, string>(), Train(data, run, "--max-steps", "100000", "--report-to", "tensorboard")))
        {
            WaitForRows(p, run, 3);
            // TensorBoard sees the run live: its scalars are in the event file while training goes on.
            string events = Assert.Single(Directory.GetFiles(Path.Combine(run, TensorBoardLog.Folder)));
            Assert.Contains(TfEventReader.Read(events, allowTruncatedTail: true).SelectMany(e => e.Scalars), s => s.Tag == "train/loss" && s.Step == 2);
            Send(p, SIGINT);
            var r = p.Wait(Patience);
            Assert.True(r.ExitCode == 130, r.ToString());
            Assert.Contains("SIGINT: stopping after this optimizer step", r.Stderr);
            Assert.Contains($"to continue, run the same command with --resume {run}", r.Stderr);
            k1 = StoppedStep(r, "SIGINT");
        }
        Assert.True(k1 >= 3);
        Assert.Equal(Enumerable.Range(1, k1), Steps(run)); // every step up to the stop is logged
        Assert.Equal(k1, CheckpointStore.ReadState(Path.Combine(run, $"checkpoint-{k1}")).Step);
        Assert.Equal(Path.Combine(run, $"checkpoint-{k1}"), CheckpointStore.Resolve(run));
        Assert.False(Directory.Exists(Path.Combine(run, "final")));

        int k2;
        using (var p = CliRunner.Start(null, new Dictionary<string, string>(), Train(data, run, "--max-steps", "100000", "--resume", run)))
        {
            WaitForRows(p, run, k1 + 2);
            Send(p, SIGTERM);
            var r = p.Wait(Patience);
            Assert.True(r.ExitCode == 143, r.ToString());
            k2 = StoppedStep(r, "SIGTERM");
        }
        Assert.True(k2 >= k1 + 2);
        Assert.Equal(Enumerable.Range(1, k2), Steps(run));

        // The same command line with --resume finishes the run, its log reading like one straight run.
        var done = CliRunner.Run(Train(data, run, "--max-steps", (k2 + 1).ToString(), "--resume", run));
        Assert.True(done.ExitCode == 0, done.ToString());
        Assert.Equal(Enumerable.Range(1, k2 + 1), Steps(run));
        Assert.True(Directory.Exists(Path.Combine(run, "final")));
    }

    [SkippableFact]
    public void ASecondSignalExitsAtOnceLeavingTheNewestCompleteCheckpoint()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(32, seed: 62));
        string run = dir.File("run");
        CliRunner.Result r;
        using (var p = CliRunner.Start(null, new Dictionary<string, string>(), Train(data, run, "--max-steps", "100000", "--save-steps", "1")))
        {
            WaitForRows(p, run, 3);
            // Stopped, the process holds both signals pending and gets them together when it continues, so the
            // second arrives while the first stop is still in progress (a checkpoint is written every step).
            Send(p, SIGSTOP);
            Send(p, SIGINT);
            Send(p, SIGTERM);
            Send(p, SIGCONT);
            r = p.Wait(Patience);
        }
        Assert.True(r.ExitCode is 130 or 143, r.ToString());
        Assert.Contains("again: exiting at once", r.Stderr);
        Assert.DoesNotContain("stopped by", r.Stderr); // it did not wait for the orderly stop

        // Every checkpoint-N left is complete; the newest resumes.
        foreach (var c in Directory.GetDirectories(run, "checkpoint-*"))
            Assert.Equal(CheckpointStore.StepOf(c), CheckpointStore.ReadState(c).Step);
        string newest = CheckpointStore.Resolve(run);
        int step = CheckpointStore.ReadState(newest).Step;
        Assert.True(step >= 2, newest);
        var resumed = CliRunner.Run(Train(data, run, "--max-steps", (step + 1).ToString(), "--resume", run));
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Equal(Enumerable.Range(1, step + 1), Steps(run));
    }

    /// <summary>Asks for a stop when the run reports a given step, as a signal arriving during that step would.</summary>
    sealed class StopAtStep(StopSignal stop, int step) : ITrainingObserver
    {
        public void Notice(string message) { }
        public void Started(TrainingPlan plan) { }
        public void Step(StepReport report) { if (report.Step == step) stop.Request(PosixSignal.SIGINT); }
        public void Evaluated(int step, IReadOnlyDictionary<string, double> metrics) { }
        public void Finished(TrainingSummary summary) { }
    }

    [SkippableFact]
    public void AStopLogsThePartialWindowAndAStopBeforeAnyStepWritesNothing()
    {
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("p.jsonl"), StoryPreferences.Pairs(32, seed: 63));
        var options = new TrainingOptions
        {
            Step = new StepSettings { Method = AlignmentMethods.Dpo, Model = Stories, MicroBatch = 4 },
            DataPath = data, OutputDir = dir.File("run"), LearningRate = 5e-4, MaxSteps = 20, LoggingSteps = 2, Plots = false,
        };
        using (var stop = new StopSignal())
        {
            var e = Assert.Throws<TrainingStoppedException>(() => new AlignmentTrainer(options, new StopAtStep(stop, 3), stop).Run());
            Assert.Equal(3, e.Step);
            Assert.Equal(Path.Combine(options.OutputDir, "checkpoint-3"), e.Checkpoint);
        }
        Assert.Equal(new[] { 2, 3 }, Steps(options.OutputDir)); // the window of step 3 alone is logged before stopping
        Assert.False(Directory.Exists(Path.Combine(options.OutputDir, "final")));

        using (var stop = new StopSignal())
        {
            stop.Request(PosixSignal.SIGTERM);
            var fresh = options with { OutputDir = dir.File("run2") };
            var e = Assert.Throws<TrainingStoppedException>(() => new AlignmentTrainer(fresh, null, stop).Run());
            Assert.Null(e.Checkpoint);
            Assert.Equal(PosixSignal.SIGTERM, e.Signal);
            Assert.Contains("before any step", e.Message);
            Assert.False(File.Exists(Path.Combine(fresh.OutputDir, MetricsLog.FileName)));
            Assert.Empty(Directory.GetDirectories(fresh.OutputDir, "checkpoint-*"));
        }
    }
}
