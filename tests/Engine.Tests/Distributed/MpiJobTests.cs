using System.Diagnostics;
using System.Text.Json.Nodes;
using Engine.Models;
using Engine.Objectives;
using Engine.Tests.Infrastructure;
using Engine.Training;
using Xunit.Abstractions;

namespace Engine.Tests.Distributed;

/// <summary>
/// Real Open MPI jobs of `engine train --nproc 2` on stories260K (f32, 10 steps), against the same training on one
/// process in this test run: 2 ranks × micro-batch 2 must log what 1 rank × micro-batch 4 logs, step by step and metric
/// by metric; checkpoints move between rank counts; a rank killed with SIGKILL ends the job quickly and cleanly; Ctrl-C
/// to the launcher stops every rank at a checkpoint. Five mpirun jobs in all; each test skips, with mpirun's own words, only where Open MPI cannot start two ranks here.
/// </summary>
public class MpiJobTests(ITestOutputHelper output)
{
    static string Stories => SharedData.Require(SharedData.Stories);
    static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The tolerance of the equivalence: 1e-5, relative to values above 1 in magnitude (the log-prob sums are near
    /// −100, where one f32 rounding step is 7.6e-6). KTO's kl (its z0) is a mean of differences of such sums, so its
    /// rounding is that of the sums: it is held to 1e-5 of the step's log-prob magnitude.
    /// </summary>
    const double Tolerance = 1e-5;

    static string[] Train(string method, string data, string outDir, int microBatch, params string[] extra) =>
        new[] { "train", "--method", method, "--model", Stories, "--data", data, "--out", outDir, "--batch-size", microBatch.ToString(),
                "--lr", "5e-4", "--lr-scheduler", "constant", "--max-steps", "10", "--no-plots", "--seed", "11" }.Concat(extra).ToArray();

    static string[] TwoRanks(string[] args) => args.Concat(new[] { "--nproc", "2", "--threads-per-rank", "1" }).ToArray();

    static CliRunner.Result Job(string[] args)
    {
        var r = CliRunner.RunWith(null, JobTimeout, new Dictionary<string, string>(), args);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r;
    }

    static CliRunner.Result InProcess(string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r;
    }

    static List<JsonObject> Rows(string run) =>
        File.ReadAllLines(Path.Combine(run, MetricsLog.FileName)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    /// <summary>Every logged value of <paramref name="actual"/> against the row of the same step in <paramref name="expected"/>; returns the largest difference.</summary>
    static double AssertSameRows(IReadOnlyList<JsonObject> expected, IReadOnlyList<JsonObject> actual, string what)
    {
        Assert.Equal(expected.Select(r => (int)r["step"]!), actual.Select(r => (int)r["step"]!));
        double largest = 0;
        for (int i = 0; i < expected.Count; i++)
        {
            var e = expected[i];
            var a = actual[i];
            Assert.Equal(e.Select(kv => kv.Key).OrderBy(k => k), a.Select(kv => kv.Key).OrderBy(k => k));
            double logpScale = e.Where(kv => kv.Key.StartsWith("logps/")).Select(kv => Math.Abs((double)kv.Value!)).DefaultIfEmpty(1).Max();
            foreach (var (name, node) in e)
            {
                if (name is MetricNames.TokensPerSecond or "step") continue;
                if (node!.GetValueKind() == System.Text.Json.JsonValueKind.String)
                {
                    Assert.Equal((string)node!, (string)a[name]!); // a non-finite value ("NaN") on both sides
                    continue;
                }
                double x = (double)node!, y = (double)a[name]!;
                double scale = name.StartsWith("kl") ? Math.Max(1, logpScale) : Math.Max(1, Math.Abs(x));
                double diff = Math.Abs(x - y);
                largest = Math.Max(largest, diff / scale);
                Assert.True(diff <= Tolerance * scale, $"{what}, step {e["step"]}: {name} {y} vs {x} (difference {diff:E2}, allowed {Tolerance * scale:E2})");
            }
        }
        return largest;
    }

    [SkippableFact]
    public void DpoOnTwoRanksEqualsOneRankAndCheckpointsResumeWithTheOtherRankCount()
    {
        OpenMpiProbe.SkipUnlessTwoRanksStart();
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(48, seed: 5));
        string one = dir.File("one"), two = dir.File("two");
        InProcess(Train("dpo", data, one, 4, "--save-steps", "5"));
        var job = Job(TwoRanks(Train("dpo", data, two, 2, "--save-steps", "5")));
        Assert.Contains("data-parallel: 2 ranks", job.Stdout + job.Stderr);
        var reference = Rows(one);
        Assert.Equal(10, reference.Count);
        output.WriteLine($"DPO 2 ranks vs 1: largest scaled difference {AssertSameRows(reference, Rows(two), "2 ranks × 2 vs 1 rank × 4"):E2}");
        // Rank 0 alone wrote OUT: one metrics file, the checkpoints, the final model; nothing from rank 1 beside them.
        Assert.Equal(new[] { "checkpoint-10", "checkpoint-5", "final" }, Directory.GetDirectories(two).Select(Path.GetFileName).Order());

        // The 2-rank checkpoint continued by one rank, and the 1-rank checkpoint by two.
        string twoThenOne = dir.File("two-then-one"), oneThenTwo = dir.File("one-then-two");
        InProcess(Train("dpo", data, twoThenOne, 4, "--resume", Path.Combine(two, "checkpoint-5")));
        Job(TwoRanks(Train("dpo", data, oneThenTwo, 2, "--resume", Path.Combine(one, "checkpoint-5"))));
        output.WriteLine($"resumed 2 → 1 ranks: {AssertSameRows(reference.Skip(5).ToList(), Rows(twoThenOne), "resumed at step 5 of 2 ranks with 1 rank"):E2}");
        output.WriteLine($"resumed 1 → 2 ranks: {AssertSameRows(reference.Skip(5).ToList(), Rows(oneThenTwo), "resumed at step 5 of 1 rank with 2 ranks"):E2}");
    }

    [SkippableFact]
    public void KtoOnTwoRanksEqualsOneRankWithZ0OverTheGlobalBatch()
    {
        OpenMpiProbe.SkipUnlessTwoRanksStart();
        using var dir = new TempDir();
        string data = StoryPreferences.WriteUnpaired(dir.File("train.jsonl"), StoryPreferences.Pairs(24, seed: 6));
        string one = dir.File("one"), two = dir.File("two");
        InProcess(Train("kto", data, one, 4));
        Job(TwoRanks(Train("kto", data, two, 2)));
        var reference = Rows(one);
        Assert.Equal(10, reference.Count);
        // z0 is logged as kl (clamped at 0) and kl/unclamped: both must match, and must not be trivially 0 everywhere.
        Assert.Contains(reference, r => Math.Abs((double)r["kl/unclamped"]!) > 1e-3);
        output.WriteLine($"KTO 2 ranks vs 1: largest scaled difference {AssertSameRows(reference, Rows(two), "KTO, 2 ranks × 2 vs 1 rank × 4"):E2}");
    }

    [SkippableFact]
    public void ARankKilledWithSigkillEndsTheJobWithAClearErrorAndLeavesTheNewestCheckpoint()
    {
        OpenMpiProbe.SkipUnlessTwoRanksStart();
        Skip.IfNot(OperatingSystem.IsLinux(), "finds the rank's process through /proc");
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(16, seed: 7));
        string run = dir.File("run");
        var args = TwoRanks(Train("dpo", data, run, 2, "--save-steps", "2")).ToList();
        args[args.IndexOf("--max-steps") + 1] = "100000";
        using var job = CliRunner.Start(null, new Dictionary<string, string>(), args.ToArray());
        var started = Stopwatch.StartNew();
        while (!Directory.Exists(Path.Combine(run, "checkpoint-4")))
        {
            if (job.Process.HasExited) Assert.Fail("the job ended before its second checkpoint: " + job.Wait(TimeSpan.FromSeconds(5)));
            Assert.True(started.Elapsed < JobTimeout, "no checkpoint-4 in time");
            Thread.Sleep(100);
        }
        int victim = RankProcess(job.Process.Id, rank: 1);
        var killed = Stopwatch.StartNew();
        Process.GetProcessById(victim).Kill();
        var result = job.Wait(TimeSpan.FromSeconds(60));
        var took = killed.Elapsed;
        output.WriteLine($"the job ended {took.TotalSeconds:F1} s after rank 1 was killed");

        Assert.NotEqual(0, result.ExitCode);
        Assert.True(took < TimeSpan.FromSeconds(30), $"the job took {took.TotalSeconds:F1} s to end after rank 1 was killed\n{result}");
        Assert.Contains($"rank 1 (pid {victim}) stopped", result.Stderr);
        Assert.Contains("the newest complete checkpoint is", result.Stderr);
        // The newest checkpoint is complete: its state reads, its model loads, and it is the one the message names.
        string newest = CheckpointStore.Resolve(run);
        Assert.Contains(newest, result.Stderr);
        var state = CheckpointStore.ReadState(newest);
        Assert.Equal(2, state.Ranks);
        Assert.Equal(4, state.GlobalMicroBatch);
        Assert.True(state.Step >= 4);
        using var loaded = ModelLoader.Load(CheckpointStore.ModelDir(newest), TorchSharp.torch.ScalarType.Float32, requireTokenizer: true).Model;
        Assert.NotEmpty(loaded.parameters());
    }

    [SkippableFact]
    public void CtrlCToTheLauncherStopsEveryRankAfterAStepWithOneMessageACheckpointAndExit130()
    {
        OpenMpiProbe.SkipUnlessTwoRanksStart();
        Skip.IfNot(OperatingSystem.IsLinux(), "signals and /proc");
        using var dir = new TempDir();
        string data = StoryPreferences.WritePaired(dir.File("train.jsonl"), StoryPreferences.Pairs(16, seed: 8));
        string run = dir.File("run");
        var args = TwoRanks(Train("dpo", data, run, 2, "--save-steps", "1000")).ToList();
        args[args.IndexOf("--max-steps") + 1] = "100000";
        using var job = CliRunner.Start(null, new Dictionary<string, string>(), args.ToArray());
        string metrics = Path.Combine(run, MetricsLog.FileName);
        var started = Stopwatch.StartNew();
        while (!(File.Exists(metrics) && File.ReadAllLines(metrics).Length >= 2))
        {
            if (job.Process.HasExited) Assert.Fail("the job ended before its second step: " + job.Wait(TimeSpan.FromSeconds(5)));
            Assert.True(started.Elapsed < JobTimeout, "no second step in time");
            Thread.Sleep(100);
        }
        // A terminal's Ctrl-C goes to the foreground process group: mpirun must not be in the launcher's, or it would get
        // the signal twice (directly and forwarded) and kill the ranks without their checkpoint.
        int mpirun = Process.GetProcesses().Single(p => p.ProcessName == "mpirun" && DescendsFrom(p.Id, job.Process.Id)).Id;
        Assert.NotEqual(ProcessGroup(job.Process.Id), ProcessGroup(mpirun));
        Assert.Equal(0, SendSignal(job.Process.Id, 2));
        var result = job.Wait(TimeSpan.FromSeconds(90));
        output.WriteLine(result.Stderr);

        Assert.True(result.ExitCode == 130, result.ToString());
        string newest = CheckpointStore.Resolve(run);
        Assert.Contains($"the 2-rank job stopped on SIGINT after", result.Stderr);
        Assert.Contains($"the newest complete checkpoint is {newest}", result.Stderr);
        // The ranks finished their step and wrote the checkpoint (no --save-steps checkpoint is due this early), and only
        // rank 0 said so.
        int step = CheckpointStore.ReadState(newest).Step;
        Assert.Equal(Path.Combine(run, $"checkpoint-{step}"), newest);
        Assert.Single(result.Stderr.Split('\n'), l => l.StartsWith("stopped by ", StringComparison.Ordinal));
        Assert.Equal(step, Rows(run).Count);
        Assert.False(Directory.Exists(Path.Combine(run, "final")));
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    static extern int SendSignal(int pid, int signal);

    static int ProcessGroup(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[2]);
    }

    /// <summary>The pid of rank <paramref name="rank"/> among the descendants of <paramref name="launcher"/> (Open MPI sets OMPI_COMM_WORLD_RANK).</summary>
    static int RankProcess(int launcher, int rank)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            foreach (var dir in Directory.GetDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out int pid) || !DescendsFrom(pid, launcher)) continue;
                string environ;
                try { environ = File.ReadAllText(Path.Combine(dir, "environ")); }
                catch (IOException) { continue; }
                catch (UnauthorizedAccessException) { continue; }
                if (environ.Split('\0').Contains($"OMPI_COMM_WORLD_RANK={rank}")) return pid;
            }
            Thread.Sleep(100);
        }
        throw new InvalidOperationException($"no process of rank {rank} under pid {launcher}");
    }

    static bool DescendsFrom(int pid, int ancestor)
    {
        for (int i = 0; i < 16 && pid > 1; i++)
        {
            if (pid == ancestor) return true;
            try
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                pid = int.Parse(fields[1]);
            }
            catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException) { return false; }
        }
        return false;
    }
}

/// <summary>Whether Open MPI can start a 2-rank job here, found once per test run by starting one.</summary>
public static class OpenMpiProbe
{
    static readonly Lazy<string?> Problem = new(Probe);

    public static void SkipUnlessTwoRanksStart()
    {
        Skip.If(Problem.Value is not null, $"Open MPI cannot start 2 ranks here: {Problem.Value}");
    }

    static string? Probe()
    {
        ProcessStartInfo psi;
        try { psi = Engine.Distributed.Launch.LocalMpirun(2, "/bin/true", Array.Empty<string>()); }
        catch (EngineException e) { return e.Message; }
        // Looked up, not loaded: loading it here would put libmpi into the test process, which LaunchTests checks
        // stays free of it.
        if (!LinkerKnows("libmpi.so.40")) return "the dynamic linker does not know libmpi.so.40 (Debian: apt-get install libopenmpi-dev)";
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(60_000)) { p.Kill(true); return "mpirun -np 2 /bin/true did not finish in 60 s"; }
        return p.ExitCode == 0 ? null : $"mpirun -np 2 /bin/true exited with {p.ExitCode}: {err.Result.Trim()}";
    }

    static bool LinkerKnows(string library)
    {
        try
        {
            using var ldconfig = Process.Start(new ProcessStartInfo("/sbin/ldconfig", "-p") { RedirectStandardOutput = true, UseShellExecute = false })!;
            string cache = ldconfig.StandardOutput.ReadToEnd();
            ldconfig.WaitForExit();
            return cache.Contains(library, StringComparison.Ordinal);
        }
        catch (System.ComponentModel.Win32Exception) { return false; }
    }
}
