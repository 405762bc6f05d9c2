using System.Text.Json.Nodes;
using Engine.Gguf.LlamaCpp;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Gguf;

/// <summary>llama.cpp through LLamaSharp: which build is loaded, and real inference on the reference GGUF files.</summary>
public class LlamaCppBindingTests
{
    [SkippableFact]
    public void ExactlyTheChosenCpuBuildIsLoaded()
    {
        LlamaCppRequirement.Require();
        LlamaCppRuntime.EnsureLoaded();
        string expected = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", LlamaCppRuntime.CpuLevel);
        Assert.Equal(Path.GetFullPath(expected), Path.GetFullPath(LlamaCppRuntime.LibraryDirectory!));
        // Every llama/ggml library mapped into this process comes from that one folder (no second level, no system copy).
        var mapped = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && Path.GetFileName(f[^1]) is "libllama.so" or "libggml.so" or "libggml-base.so" or "libggml-cpu.so")
            .Select(f => f[^1]).Distinct().ToList();
        Assert.Equal(4, mapped.Count);
        Assert.All(mapped, path => Assert.Equal(Path.GetFullPath(expected), Path.GetDirectoryName(path)));
    }

    [SkippableFact]
    public void ReferenceGgufGreedyFromBosGivesTheReferenceIds()
    {
        LlamaCppRequirement.Require();
        string path = SharedData.Require("models/stories260K/stories260K.gguf");
        using var model = LlamaCppModel.Load(path, contextLength: 64);
        Assert.Equal(512, model.VocabSize);
        Assert.Equal(1, model.BosId);
        Assert.Equal(2, model.EosId);
        Assert.Equal("llama", model.Metadata("general.architecture"));
        Assert.Null(model.Metadata("no.such.key"));
        Assert.Equal(SharedData.StoriesGreedyIds, model.Greedy(new[] { 1 }, 25));
    }

    [SkippableFact]
    public void MetadataLookupIgnoresWhatTheSharedArrayPoolLeftBehind()
    {
        LlamaCppRequirement.Require();
        using var model = LlamaCppModel.Load(SharedData.Require("models/stories260K/stories260K.gguf"), contextLength: 64);
        // LLamaSharp hands llama.cpp the key in a rented buffer with no terminating NUL; leave non-zero bytes in every
        // pooled buffer a 20-40 byte key could be given, on this thread, so a key read past its end cannot match.
        foreach (int size in new[] { 16, 32, 64 })
        {
            var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(size);
            Array.Fill(rented, (byte)'x');
            System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal("llama", model.Metadata("general.architecture"));
            Assert.Equal("5", model.Metadata("llama.block_count"));
            Assert.Equal("64", model.Metadata("llama.embedding_length"));
        }
    }

    [SkippableFact]
    public void ReferenceGgufLogitsMatchTheIndependentForward()
    {
        LlamaCppRequirement.Require();
        string path = SharedData.Require("models/stories260K/stories260K.gguf");
        using var model = LlamaCppModel.Load(path, contextLength: 64);
        var logits = model.Logits(new[] { 1, 403, 407, 261 });
        float[] expected = { -6.714255f, -6.053027f, -6.715039f, -6.714494f };
        for (int i = 0; i < 4; i++) Assert.InRange(logits[3][i], expected[i] - 1e-4f, expected[i] + 1e-4f);
        // Every position is evaluated, not only the last: position 0 is BOS alone, and a fresh evaluation of it agrees
        // (up to the different kernel llama.cpp picks for a batch of one).
        var first = model.Logits(new[] { 1 });
        Assert.InRange(Engine.Gguf.LogitStatistics.MaxAbsDiff(first[0], logits[0]), 0, 1e-4);
        Assert.Equal(SharedData.StoriesGreedyIds[0], LlamaCppModel.ArgMax(logits[0]));
    }

    [SkippableFact]
    public void TokenizesLikeTheReferenceIds()
    {
        LlamaCppRequirement.Require();
        using var model = LlamaCppModel.Load(SharedData.Require("models/stories260K/stories260K.gguf"), contextLength: 64);
        // The reference greedy text decodes from these ids; tokenizing it with BOS gives them back.
        Assert.Equal(new[] { 1 }.Concat(SharedData.StoriesGreedyIds.Take(5)), model.Tokenize("Once upon a time,", addSpecial: true));
        Assert.Equal(new[] { 1 }, model.Tokenize("", addSpecial: true));
        Assert.Empty(model.Tokenize("", addSpecial: false));
    }

    [SkippableFact]
    public void TinyRandomF16GreedyFromBosGivesTheReferenceIds()
    {
        LlamaCppRequirement.Require();
        string path = SharedData.Require("models/llama-2-tiny-random/llama-2-tiny-random.gguf");
        using var model = LlamaCppModel.Load(path, contextLength: 64);
        Assert.Equal(new[] { 31102, 18247, 4847, 634, 20459, 5601, 29710, 4660, 29509, 31364 }, model.Greedy(new[] { 1 }, 10));
    }

    [SkippableFact]
    public void LoadingAnInvalidFileIsAClearError()
    {
        LlamaCppRequirement.Require();
        using var tmp = new TempDir();
        string bad = tmp.File("bad.gguf");
        File.WriteAllBytes(bad, new byte[] { (byte)'G', (byte)'G', (byte)'U', (byte)'F', 3, 0, 0, 0, 1 });
        var e = Assert.Throws<EngineException>(() => LlamaCppModel.Load(bad));
        Assert.Contains("could not load", e.Message);
        Assert.Contains("not found", Assert.Throws<EngineException>(() => LlamaCppModel.Load(tmp.File("absent.gguf"))).Message);
    }
}

/// <summary>The CPU build chosen by ENGINE_LLAMA_AVX, seen through the command line (a fresh process per choice).</summary>
public class LlamaCppBuildSelectionTests
{
    [SkippableFact]
    public void AnUnknownBuildIsAClearErrorAndNothingIsWritten()
    {
        using var tmp = new TempDir();
        string output = tmp.File("out.gguf");
        var r = CliRunner.RunWith(null, TimeSpan.FromMinutes(5), new Dictionary<string, string> { [LlamaCppRuntime.AvxVariable] = "avx9000" },
            "export", "--model", SharedData.Require(SharedData.Stories), "--out", output, "--type", "f32");
        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains($"{LlamaCppRuntime.AvxVariable}=avx9000", r.Stderr);
        Assert.Contains("noavx, avx, avx2 or avx512", r.Stderr);
        Assert.Empty(Directory.GetFiles(tmp.Path));
    }

    [SkippableFact]
    public void TheNoAvxBuildValidatesTheSameExportAndJsonCarriesTheReport()
    {
        LlamaCppRequirement.Require();
        using var tmp = new TempDir();
        var r = CliRunner.RunWith(null, TimeSpan.FromMinutes(5), new Dictionary<string, string> { [LlamaCppRuntime.AvxVariable] = "noavx" },
            "export", "--model", SharedData.Require(SharedData.Stories), "--out", tmp.File("s.gguf"), "--type", "q8_0", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var report = JsonNode.Parse(r.Stdout)!; // stdout is the JSON object and nothing else
        Assert.Equal("noavx", (string?)report["llama_cpp_build"]);
        Assert.Equal("q8_0", (string?)report["type"]);
        Assert.True((bool)report["passed"]!);
        Assert.Empty(report["failures"]!.AsArray());
        var faithfulness = report["faithfulness"]!;
        Assert.True((bool)faithfulness["passed"]!);
        var prompts = faithfulness["prompts"]!.AsArray();
        Assert.Equal(Engine.Gguf.GgufValidator.DefaultPrompts.Count + 1, prompts.Count);
        Assert.All(prompts, p => Assert.InRange((double)p!["max_relative_error"]!, 0, (double)faithfulness["tolerance"]!["max_relative_error"]!));
        Assert.Equal("Q8_0", (string?)faithfulness["tolerance"]!["activation_rounding"]);
        Assert.InRange((double)report["kl_mean"]!, 0, 0.01);
        Assert.InRange((double)report["kl_p99"]!, (double)report["kl_mean"]!, 0.1);
        Assert.InRange((double)report["top1_agreement"]!, 0.95, 1);
        Assert.InRange((double)report["perplexity_ratio"]!, 0.98, 1.02);
        Assert.True((bool)report["tokenizer"]!["agrees"]!);
        Assert.Equal(16, (int)report["greedy"]!["identical_prefix"]!);
        Assert.True(File.Exists(tmp.File("s.gguf")));
    }
}
