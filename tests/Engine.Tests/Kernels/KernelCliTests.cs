using System.Text.Json;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Kernels;

/// <summary>The kernel commands end to end, as a user runs them (./engine ...).</summary>
public class KernelCliTests
{
    [Fact]
    public void KernelsCompileJsonHasOneObjectPerKernelAndArchitecture()
    {
        var r = CliRunner.Run("kernels", "compile", "--json", "--arch", "sm_89,compute_80");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var items = doc.RootElement.EnumerateArray().ToList();
        int kernels = Engine.Kernels.Cuda.KernelSources.Kernels.Values.Sum(k => k.Length);
        Assert.Equal(25, kernels); // log-prob (4), z0 (1), dequantizing matmul (4), layer kernels (13), AdamW (3)
        Assert.Equal(kernels * 2, items.Count); // each kernel x (sm_89 cubin, compute_80 PTX)
        var cubins = items.Where(i => i.GetProperty("arch").GetString() == "sm_89").ToList();
        Assert.Equal(kernels, cubins.Count);
        Assert.Contains(cubins, i => i.GetProperty("kernel").GetString() == "qmatmul_backward_bf16");
        Assert.Contains(cubins, i => i.GetProperty("kernel").GetString() == "adamw_step");
        Assert.Contains(cubins, i => i.GetProperty("kernel").GetString() == "token_logprob_forward_bf16");
        Assert.Contains(cubins, i => i.GetProperty("kernel").GetString() == "kl_z0_reduce");
        Assert.Contains(cubins, i => i.GetProperty("kernel").GetString() == "rope_strided_bf16");
        foreach (var c in cubins)
        {
            Assert.InRange(c.GetProperty("registers").GetInt32(), 1, 255);
            Assert.Equal(0, c.GetProperty("spill_bytes").GetInt32());
        }
    }

    [Fact]
    public void KernelsCompileRejectsAnUnknownArchitecture()
    {
        var r = CliRunner.Run("kernels", "compile", "--arch", "sm_8x");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("unknown CUDA target 'sm_8x'", r.Stderr);
    }

    [Fact]
    public void BenchKernelsJsonReportsEveryField()
    {
        var r = CliRunner.Run("bench", "kernels", "--json", "--case", "logprob", "--rows", "8", "--vocab", "1000,333", "--dtype", "f32,bf16",
            "--repeat", "2", "--head-hidden", "8");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var items = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(4, items.Count);
        foreach (var item in items)
        {
            foreach (string field in new[] { "naive_ms", "fused_ms", "fused_forward_ms", "floor_ms", "head_naive_ms", "head_chunked_ms" })
                Assert.True(item.GetProperty(field).GetDouble() > 0, $"{field} in {item}");
            foreach (string field in new[] { "naive_extra_bytes", "fused_extra_bytes" })
                Assert.Equal(JsonValueKind.Number, item.GetProperty(field).ValueKind);
            Assert.Equal(8, item.GetProperty("rows").GetInt64());
            // Every timed figure carries [min, median, max]; the median is the *_ms field.
            var spread = item.GetProperty("min_median_max_ms");
            foreach (string figure in new[] { "naive", "fused", "fused_forward", "floor", "head_naive", "head_chunked", "forward_over_floor_pairs" })
            {
                var v = spread.GetProperty(figure).EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Assert.Equal(3, v.Length);
                Assert.True(v[0] > 0 && v[0] <= v[1] && v[1] <= v[2], $"{figure}: {string.Join(", ", v)}");
                if (figure != "forward_over_floor_pairs") Assert.Equal(item.GetProperty(figure + "_ms").GetDouble(), v[1]);
            }
            Assert.Equal(2, item.GetProperty("repeat").GetInt32());
            Engine.Tests.Cli.BenchCliTests.AssertMachine(item);
        }
        Assert.Equal(new[] { "f32", "bf16", "f32", "bf16" }, items.Select(i => i.GetProperty("dtype").GetString()));
    }

    [SkippableFact]
    public void BenchKernelsAdamWRowsReportEveryField()
    {
        var r = CliRunner.Run("bench", "kernels", "--json", "--case", "adamw", "--adamw-model", SharedData.Require(SharedData.Stories), "--repeat", "2");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var items = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(new[] { "f32/f32", "bf16/f32", "bf16/bf16" }, items.Select(i => $"{i.GetProperty("dtype").GetString()}/{i.GetProperty("state_dtype").GetString()}"));
        foreach (var item in items)
        {
            Assert.Equal("adamw", item.GetProperty("kernel").GetString());
            long n = item.GetProperty("parameters").GetInt64();
            Assert.True(n > 0);
            // Bytes per parameter: norm read + update (f32 32; bf16 + master: 30 with f32 moments, 22 with bf16).
            long perParam = item.GetProperty("dtype").GetString() == "f32" ? 32 : item.GetProperty("state_dtype").GetString() == "f32" ? 30 : 22;
            Assert.Equal(perParam * n, item.GetProperty("bytes_moved").GetInt64());
            foreach (string field in new[] { "torch_ms", "fused_ms", "fused_update_ms", "floor_update_ms", "floor_ms", "speedup", "fused_over_floor", "bandwidth_gbs" })
                Assert.True(item.GetProperty(field).GetDouble() > 0, $"{field} in {item}");
            var spread = item.GetProperty("min_median_max_ms");
            foreach (string figure in new[] { "torch", "fused", "fused_update", "floor_update", "floor", "speedup_pairs", "fused_over_floor_pairs" })
            {
                var v = spread.GetProperty(figure).EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Assert.True(v.Length == 3 && v[0] > 0 && v[0] <= v[1] && v[1] <= v[2], $"{figure}: {string.Join(", ", v)}");
            }
            Engine.Tests.Cli.BenchCliTests.AssertMachine(item);
        }
    }

    [Fact]
    public void BenchKernelsReportsTheLayerKernels()
    {
        var r = CliRunner.Run("bench", "kernels", "--json", "--case", "rmsnorm,rope,swiglu,geglu", "--tokens", "16", "--dtype", "f32,bf16", "--repeat", "2");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var items = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(new[] { "rmsnorm", "rmsnorm", "rope", "rope", "swiglu", "swiglu", "geglu", "geglu" }, items.Select(i => i.GetProperty("kernel").GetString()));
        foreach (var item in items)
        {
            foreach (string field in new[] { "fused_ms", "composite_ms", "speedup", "floor_ms", "fused_over_floor", "fused_over_best_floor", "copy_bandwidth_gb_s",
                         "kernel_ms", "kernel_over_floor" })
                Assert.True(item.GetProperty(field).GetDouble() > 0, $"{field} in {item}");
            Assert.True(item.GetProperty("bytes_moved").GetInt64() > 0);
            // The floor: the bytes at the median of the per-repeat copy bandwidths; the target's ratio: the median of
            // the per-repeat ratios (each fused time over the floor of its own repeat's bandwidth).
            double[] Triple(string name)
            {
                var v = item.GetProperty(name).EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Assert.True(v.Length == 3 && v[0] <= v[1] && v[1] <= v[2], $"{name}: {string.Join(", ", v)}");
                return v;
            }
            var bandwidth = Triple("copy_bandwidth_samples");
            Assert.Equal(bandwidth[1], item.GetProperty("copy_bandwidth_gb_s").GetDouble());
            Assert.Equal(item.GetProperty("bytes_moved").GetInt64() / (bandwidth[1] * 1e6), item.GetProperty("floor_ms").GetDouble(), 9);
            Assert.Equal(Triple("fused_over_floor_pairs")[1], item.GetProperty("fused_over_floor").GetDouble());
            Assert.Equal(Triple("kernel_over_floor_pairs")[1], item.GetProperty("kernel_over_floor").GetDouble());
            var spread = item.GetProperty("min_median_max_ms");
            foreach (string figure in new[] { "fused", "composite", "kernel" })
            {
                var v = spread.GetProperty(figure).EnumerateArray().Select(e => e.GetDouble()).ToArray();
                Assert.True(v.Length == 3 && v[0] <= v[1] && v[1] <= v[2], $"{figure}: {string.Join(", ", v)}");
            }
            Assert.Equal(spread.GetProperty("kernel")[1].GetDouble(), item.GetProperty("kernel_ms").GetDouble());
        }
        // 16 tokens of bench-25m: RMSNorm moves 5 × 16 × 512 elements.
        Assert.Equal(5L * 16 * 512 * 4, items[0].GetProperty("bytes_moved").GetInt64());
        Assert.Equal(5L * 16 * 512 * 2, items[1].GetProperty("bytes_moved").GetInt64());
    }

    [Fact]
    public void BenchKernelsRejectsBadOptions()
    {
        var r = CliRunner.Run("bench", "kernels", "--dtype", "f16");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--dtype", r.Stderr);
        r = CliRunner.Run("bench", "kernels", "--rows", "0");
        Assert.Equal(2, r.ExitCode);
        r = CliRunner.Run("bench", "kernels", "--rowz", "5");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("unknown option --rowz", r.Stderr);
    }
}
