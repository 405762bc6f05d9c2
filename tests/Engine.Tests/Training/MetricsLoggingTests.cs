using System.Globalization;
using System.Text.Json.Nodes;
using Engine.Data;
using Engine.Objectives;
using Engine.Tests.Infrastructure;
using Engine.Training;
using Xunit.Abstractions;

namespace Engine.Tests.Training;

/// <summary>
/// Two runs of the same 5 steps with an eval every 2: one row per step (--logging-steps 1), and rows averaged over
/// 2 steps with TensorBoard on (from a --config file, to check its keys too). Made once, read by the tests below.
/// </summary>
public sealed class LoggedRuns : IDisposable
{
    readonly TempDir _dir = new();
    readonly Lazy<(string PerStep, string Averaged)> _runs;

    public LoggedRuns()
    {
        _runs = new Lazy<(string, string)>(() =>
        {
            string stories = SharedData.PathOf(SharedData.Stories);
            string data = StoryPreferences.WritePaired(_dir.File("p.jsonl"), StoryPreferences.Pairs(40, seed: 31));
            string[] Args(string outDir) => new[] { "train", "--method", "dpo", "--model", stories, "--data", data, "--out", outDir,
                "--batch-size", "4", "--lr", "5e-4", "--no-plots", "--max-steps", "5", "--eval-fraction", "0.2", "--eval-steps", "2" };
            string perStep = _dir.File("per-step"), averaged = _dir.File("averaged");
            var a = CliRunner.Run(Args(perStep).Concat(new[] { "--logging-steps", "1" }).ToArray());
            Assert.True(a.ExitCode == 0, a.ToString());
            string config = _dir.File("tb.toml");
            File.WriteAllText(config, "report_to = \"tensorboard\"\nlogging_steps = 2\n");
            var b = CliRunner.Run(Args(averaged).Concat(new[] { "--config", config }).ToArray());
            Assert.True(b.ExitCode == 0, b.ToString());
            return (perStep, averaged);
        });
    }

    public string PerStep => _runs.Value.PerStep;
    public string Averaged => _runs.Value.Averaged;

    public static List<JsonObject> Rows(string run) =>
        File.ReadAllLines(Path.Combine(run, MetricsLog.FileName)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    public static double Number(JsonNode n) => double.Parse(n.ToJsonString(), CultureInfo.InvariantCulture);

    public void Dispose() => _dir.Dispose();
}

/// <summary>--logging-steps and --report-to tensorboard.</summary>
public class MetricsLoggingTests : IClassFixture<LoggedRuns>
{
    readonly LoggedRuns _runs;
    readonly ITestOutputHelper _output;

    public MetricsLoggingTests(LoggedRuns runs, ITestOutputHelper output)
    {
        _runs = runs;
        _output = output;
    }

    static bool IsTrain(JsonObject row) => row.ContainsKey(MetricNames.Loss);

    [SkippableFact]
    public void LoggingStepsAverageAsTrlLogs()
    {
        SharedData.Require(SharedData.Stories);
        var perStep = LoggedRuns.Rows(_runs.PerStep).Where(IsTrain).ToDictionary(r => (int)LoggedRuns.Number(r["step"]!));
        var averaged = LoggedRuns.Rows(_runs.Averaged).Where(IsTrain).ToList();
        Assert.Equal(new[] { 1, 2, 3, 4, 5 }, perStep.Keys.OrderBy(k => k));
        // Rows at each multiple of 2, and the last step's window (step 5 alone).
        Assert.Equal(new[] { 2, 4, 5 }, averaged.Select(r => (int)LoggedRuns.Number(r["step"]!)));
        var windows = new[] { new[] { 1, 2 }, new[] { 3, 4 }, new[] { 5 } };
        for (int i = 0; i < windows.Length; i++)
        {
            var row = averaged[i];
            var steps = windows[i];
            double Mean(string name) => steps.Average(s => LoggedRuns.Number(perStep[s][name]!));
            double Last(string name) => LoggedRuns.Number(perStep[steps[^1]][name]!);
            void Near(double expected, string name) =>
                Assert.True(Math.Abs(LoggedRuns.Number(row[name]!) - expected) <= 1e-6 + 1e-5 * Math.Abs(expected),
                    $"step {steps[^1]} {name}: {row[name]} vs expected {expected}");
            // Every step has the same 4 pairs, so the mean over the window's examples is the mean of the steps' values.
            foreach (var name in new[] { MetricNames.Loss, MetricNames.RewardsChosen, MetricNames.RewardsRejected, MetricNames.RewardsMargins,
                         MetricNames.RewardsAccuracies, MetricNames.LogpsChosen, MetricNames.LogpsRejected })
                Near(Mean(name), name);
            // The logits are means over completion tokens, weighted by each step's token count: between the steps' values.
            foreach (var name in new[] { MetricNames.LogitsChosen, MetricNames.LogitsRejected })
            {
                var values = steps.Select(s => LoggedRuns.Number(perStep[s][name]!)).ToList();
                double v = LoggedRuns.Number(row[name]!);
                Assert.True(v >= values.Min() - 1e-6 && v <= values.Max() + 1e-6, $"step {steps[^1]} {name}: {v} outside the steps' [{values.Min()}, {values.Max()}]");
            }
            foreach (var name in new[] { MetricNames.LearningRate, MetricNames.GradNorm, MetricNames.Epoch })
                Near(Last(name), name);
        }
        // Eval rows do not depend on --logging-steps, and equal eval values show the two runs trained alike.
        var evalA = LoggedRuns.Rows(_runs.PerStep).Where(r => !IsTrain(r)).ToList();
        var evalB = LoggedRuns.Rows(_runs.Averaged).Where(r => !IsTrain(r)).ToList();
        Assert.Equal(3, evalA.Count); // steps 2, 4 and the end (5)
        Assert.Equal(evalA.Count, evalB.Count);
        for (int i = 0; i < evalA.Count; i++)
            foreach (var (key, value) in evalA[i])
                Assert.True(Math.Abs(LoggedRuns.Number(value!) - LoggedRuns.Number(evalB[i][key]!)) <= 1e-6 + 1e-5 * Math.Abs(LoggedRuns.Number(value!)),
                    $"eval row {i} {key}: {value} vs {evalB[i][key]}");
    }

    [SkippableFact]
    public void TensorBoardEventFileHoldsEveryMetricUnderTrlNames()
    {
        SharedData.Require(SharedData.Stories);
        Assert.False(Directory.Exists(Path.Combine(_runs.PerStep, TensorBoardLog.Folder))); // --report-to defaults to none
        var files = Directory.GetFiles(Path.Combine(_runs.Averaged, "runs"));
        var file = Assert.Single(files);
        Assert.StartsWith("events.out.tfevents.", Path.GetFileName(file));
        var events = TfEventReader.Read(file);
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        var scalars = events.SelectMany(e => e.Scalars).ToList();
        Assert.All(events.Skip(1), e => Assert.True(e.WallTime > 1.6e9, $"wall time {e.WallTime}")); // seconds since 1970

        // Expected: every value of metrics.jsonl, train/NAME for training rows, eval/NAME for eval_NAME.
        var expected = new List<(string Tag, long Step, double Value)>();
        foreach (var row in LoggedRuns.Rows(_runs.Averaged))
        {
            long step = (long)LoggedRuns.Number(row["step"]!);
            foreach (var (key, value) in row)
                if (key != "step")
                    expected.Add((key.StartsWith("eval_") ? "eval/" + key["eval_".Length..] : "train/" + key, step, LoggedRuns.Number(value!)));
        }
        Assert.Equal(expected.Count, scalars.Count);
        foreach (var (tag, step, value) in expected)
        {
            var match = scalars.Where(s => s.Tag == tag && s.Step == step).ToList();
            Assert.True(match.Count == 1, $"{tag} @ {step}: {match.Count} scalars");
            Assert.True(Math.Abs(match[0].Value - value) <= 1e-8 + 1e-6 * Math.Abs(value), $"{tag} @ {step}: {match[0].Value} vs {value} in metrics.jsonl");
        }
        foreach (var tag in new[] { "train/loss", "train/rewards/chosen", "train/rewards/margins", "train/learning_rate", "train/grad_norm", "train/epoch",
                     "eval/loss", "eval/rewards/accuracies" })
            Assert.Contains(scalars, s => s.Tag == tag);

        _output.WriteLine($"{Path.GetFileName(file)}: {events.Count} records, both CRCs checked on each; file_version {events[0].FileVersion}");
        foreach (var s in scalars.OrderBy(s => s.Step).ThenBy(s => s.Tag, StringComparer.Ordinal))
            _output.WriteLine($"{s.Step,4}  {s.Tag,-28} {s.Value.ToString("G9", CultureInfo.InvariantCulture)}");
    }

    [Fact]
    public void EventReaderChecksCrc32CAndMask()
    {
        // CRC-32C's published check value (RFC 3720, iSCSI) and TFRecord's mask applied by hand to it.
        uint crc = TfEventReader.Crc32C("123456789"u8);
        Assert.Equal(0xE3069283u, crc);
        Assert.Equal(unchecked(((0xE3069283u >> 15) | (0xE3069283u << 17)) + 0xA282EAD8u), TfEventReader.MaskedCrc32C("123456789"u8));

        // A record built by hand: Event { step: 3, summary { value { tag: "a", simple_value: 1.5 } } }.
        byte[] valueMsg = { 0x0A, 0x01, (byte)'a', 0x15, 0x00, 0x00, 0xC0, 0x3F };
        byte[] summary = new byte[] { 0x0A, (byte)valueMsg.Length }.Concat(valueMsg).ToArray();
        byte[] ev = new byte[] { 0x10, 0x03, 0x2A, (byte)summary.Length }.Concat(summary).ToArray();
        byte[] len = BitConverter.GetBytes((ulong)ev.Length);
        byte[] record = len.Concat(BitConverter.GetBytes(TfEventReader.MaskedCrc32C(len))).Concat(ev).Concat(BitConverter.GetBytes(TfEventReader.MaskedCrc32C(ev))).ToArray();
        using var dir = new TempDir();
        string path = dir.File("events");
        File.WriteAllBytes(path, record);
        var read = Assert.Single(TfEventReader.Read(path));
        Assert.Equal(new TfScalar("a", 3, 1.5f), Assert.Single(read.Scalars));

        record[^6] ^= 1; // a flipped bit in the data
        File.WriteAllBytes(path, record);
        Assert.Throws<InvalidDataException>(() => TfEventReader.Read(path));
        File.WriteAllBytes(path, record[..^3]);
        Assert.Empty(TfEventReader.Read(path, allowTruncatedTail: true));
    }

    [Fact]
    public void WindowMergesStepsAsTrlDoes()
    {
        // Three steps: two finite, one non-finite. Hand-worked expectations below.
        ObjectiveMetrics M(double rewardSum, double rows, double count)
        {
            var m = new ObjectiveMetrics();
            m.Add(MetricNames.RewardsChosen, rewardSum, rows);
            m.AddTotal(MetricNames.CountChosen, count);
            return m;
        }
        var w = new MetricWindow();
        w.Add(new StepOutcome(1.0, M(2.0, 4, 3), 0.5, true, 100, 1, DataPosition.Start), 1e-3, 0.25, TimeSpan.FromSeconds(1));
        w.Add(new StepOutcome(double.NaN, M(double.NaN, 4, 9), double.NaN, false, 100, 1, DataPosition.Start), 2e-3, 0.5, TimeSpan.FromSeconds(1));
        w.Add(new StepOutcome(3.0, M(6.0, 2, 1), 0.25, true, 200, 1, DataPosition.Start), 3e-3, 0.75, TimeSpan.FromSeconds(2));
        Assert.Equal(3, w.Steps);
        var row = w.Flush();
        Assert.Equal(2.0, row[MetricNames.Loss]);                    // (1 + 3) / 2: the non-finite step left out
        Assert.Equal(8.0 / 6.0, row[MetricNames.RewardsChosen], 12); // (2 + 6) / (4 + 2) examples
        Assert.Equal(4.0, row[MetricNames.CountChosen]);             // 3 + 1, summed as TRL's KTO log sums counts
        Assert.Equal(3e-3, row[MetricNames.LearningRate]);           // the last step's
        Assert.Equal(0.25, row[MetricNames.GradNorm]);
        Assert.Equal(0.75, row[MetricNames.Epoch]);
        Assert.Equal(100.0, row[MetricNames.TokensPerSecond]);       // 400 tokens in 4 s
        Assert.Equal(1.0, row[MetricNames.Skipped]);
        Assert.Equal(0, w.Steps);

        // A window of only non-finite steps reports them as non-finite rather than as nothing.
        w.Add(new StepOutcome(double.NaN, M(double.NaN, 4, 1), double.NaN, false, 10, 1, DataPosition.Start), 1e-3, 1, TimeSpan.FromSeconds(1));
        var bad = w.Flush();
        Assert.True(double.IsNaN(bad[MetricNames.Loss]));
        Assert.Equal(1.0, bad[MetricNames.Skipped]);
        Assert.Throws<InvalidOperationException>(() => w.Flush());
    }
}
