using System.Text.Json;
using Engine.Bench;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Cli;

/// <summary>
/// The quick benchmarks repeat their figures and report min/median/max, the ratio of medians and the machine they
/// ran on (what makes a number from a shared machine checkable).
/// </summary>
public class BenchCliTests
{
    [Fact]
    public void SpreadIsMinMedianMaxAndWarnsAboveItsLimit()
    {
        Assert.Equal(new Spread(1, 2, 5), Spread.Of(new[] { 5.0, 1, 2 }));
        Assert.Equal(new Spread(1, 2.5, 4), Spread.Of(new[] { 4.0, 1, 3, 2 }));
        var machine = new BenchmarkMachine("cpu", 2, "isa", 2, 1, "1.0 1.0 1.0", "2.0 2.0 2.0");
        Assert.Null(Spread.Of(new[] { 1.0, 1.29 }).WarningFor("x", machine));
        var warning = Spread.Of(new[] { 1.0, 1.31 }).WarningFor("the step time", machine);
        Assert.NotNull(warning);
        Assert.Contains("the step time varied 1.31×", warning);
        Assert.Contains("1.0 1.0 1.0 → 2.0 2.0 2.0", warning);
        Assert.Throws<ArgumentException>(() => Spread.Of(Array.Empty<double>()));
    }

    internal static void AssertMachine(JsonElement row)
    {
        var machine = row.GetProperty("machine");
        Assert.False(string.IsNullOrEmpty(machine.GetProperty("cpu").GetString()));
        Assert.Equal(Environment.ProcessorCount, machine.GetProperty("cores").GetInt32());
        Assert.True(machine.GetProperty("threads").GetInt32() >= 1);
        Assert.True(machine.GetProperty("available_memory_gib").GetDouble() > 0);
        Assert.Equal(JsonValueKind.Array, row.GetProperty("warnings").ValueKind);
    }

    static double[] MinMedianMax(JsonElement figure)
    {
        var v = new[] { figure.GetProperty("min").GetDouble(), figure.GetProperty("median").GetDouble(), figure.GetProperty("max").GetDouble() };
        Assert.True(v[0] > 0 && v[0] <= v[1] && v[1] <= v[2], string.Join(", ", v));
        return v;
    }

    [Fact]
    public void BenchForwardRepeatsAndReportsTheRatioOfMedians()
    {
        var r = CliRunner.Run("bench", "forward", "--model-preset", "bench-25m", "--batch", "1", "--seq-len", "8", "--dtype", "f32", "--repeat", "3", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout.Trim());
        var row = doc.RootElement;
        Assert.Equal(3, row.GetProperty("repeat").GetInt32());
        var step = MinMedianMax(row.GetProperty("step_s"));
        var tokens = MinMedianMax(row.GetProperty("tokens_per_s"));
        var matmul = MinMedianMax(row.GetProperty("matmul_gflops"));
        // tokens/s is the step's tokens over the step time: the fastest step gives the max rate (tokens/s is printed
        // to 0.1, the step to 0.1 ms).
        Assert.Equal(8 / step[1], tokens[1], 0.01 * tokens[1] + 0.05);
        Assert.Equal(8 / step[0], tokens[2], 0.01 * tokens[2] + 0.05);
        long parameters = row.GetProperty("parameters").GetInt64();
        double achieved = 6.0 * parameters * 8 / step[1] / 1e9;
        Assert.Equal(achieved / matmul[1], row.GetProperty("ratio_to_matmul").GetDouble(), 0.01 * achieved / matmul[1] + 1e-3);
        AssertMachine(row);
    }

    [Fact]
    public void BenchTrainRepeatsAndReportsTheRatioOfMedians()
    {
        var r = CliRunner.Run("bench", "train", "--single-process", "--model-preset", "bench-25m", "--micro-batch", "1", "--max-length", "16",
            "--method", "dpo", "--ref-mode", "cached", "--repeat", "3", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout.Trim());
        var row = doc.RootElement;
        Assert.Equal(3, row.GetProperty("steps").GetInt32());
        MinMedianMax(row.GetProperty("step_seconds"));
        var tokens = MinMedianMax(row.GetProperty("tokens_per_second"));
        var matmul = MinMedianMax(row.GetProperty("matmul_gflops"));
        double achieved = row.GetProperty("achieved_gflops").GetDouble();
        Assert.True(achieved > 0);
        Assert.Equal(achieved / matmul[1], row.GetProperty("ratio_to_matmul").GetDouble(), 1e-6 + 1e-6 * achieved / matmul[1]);
        Assert.True(tokens[1] > 0);
        // 6N over the matmul parameters only: bench-25m's 8 layers × (2·512·512 + 2·512·256 + 3·512·1536) + the head's
        // 32000·512, not the embedding lookup or the norms; attention's q·kᵀ and p·v stated apart: 6 · 8 · 512 · 16.
        Assert.Equal(41_549_824, row.GetProperty("matmul_parameters").GetInt64());
        Assert.Equal(6.0 * 41_549_824 * tokens[1] / 1e9, achieved, 1e-3 * achieved);
        Assert.Equal(6.0 * 8 * 512 * 16, row.GetProperty("attention_flops_per_token").GetDouble());
        AssertMachine(row);
    }

    [Fact]
    public void BenchStepsOptionIsNowRepeat()
    {
        var r = CliRunner.Run("bench", "forward", "--steps", "3");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--steps", r.Stderr);
    }
}
