using System.Text.Json.Nodes;
using Engine.Gguf;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Gguf;

/// <summary>`engine export` on bad input: a clear error, exit code 1, and nothing left at the output path.</summary>
public class ExportBadInputTests
{
    static void AssertNothingWritten(TempDir tmp, string output)
    {
        Assert.False(File.Exists(output), $"{output} exists");
        var leftovers = Directory.GetFiles(Path.GetDirectoryName(output)!).Where(f => f.Contains(".tmp-")).ToList();
        Assert.True(leftovers.Count == 0, $"temporary files left behind: {string.Join(", ", leftovers)}");
    }

    static CliRunner.Result Export(params string[] args) => CliRunner.Run(new[] { "export" }.Concat(args).ToArray());

    [SkippableFact]
    public void UnsupportedArchitectureInAFolder()
    {
        using var tmp = new TempDir();
        string dir = TestModels.CopyStories(tmp.File("gpt2"));
        string cfg = Path.Combine(dir, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(cfg))!.AsObject();
        json["architectures"] = new JsonArray("GPT2LMHeadModel");
        File.WriteAllText(cfg, json.ToJsonString());
        string output = tmp.File("out.gguf");
        var r = Export("--model", dir, "--out", output, "--type", "f16");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("unsupported architecture 'GPT2LMHeadModel'", r.Stderr);
        AssertNothingWritten(tmp, output);
    }

    [Fact]
    public void UnsupportedArchitectureInAGgufFile()
    {
        using var tmp = new TempDir();
        var bytes = TinyGguf.Build();
        using (var f = GgufFile.FromBytes(bytes))
        {
            // Same length, so every offset stays valid: "llama" → "gpt2x" changes only the architecture string.
            int at = IndexOf(bytes, System.Text.Encoding.ASCII.GetBytes("llama"), IndexOf(bytes, System.Text.Encoding.ASCII.GetBytes("general.architecture"), 0));
            System.Text.Encoding.ASCII.GetBytes("gpt2x").CopyTo(bytes, at);
        }
        string model = tmp.File("gpt2.gguf");
        File.WriteAllBytes(model, bytes);
        string output = tmp.File("out.gguf");
        var r = Export("--model", model, "--out", output, "--type", "q8_0");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("unsupported architecture 'gpt2x'", r.Stderr);
        Assert.Contains(model, r.Stderr);
        AssertNothingWritten(tmp, output);
    }

    static int IndexOf(byte[] haystack, byte[] needle, int from)
    {
        for (int i = from; i <= haystack.Length - needle.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        throw new InvalidOperationException("not found");
    }

    [SkippableFact]
    public void MissingTokenizer()
    {
        using var tmp = new TempDir();
        string dir = TestModels.CopyStories(tmp.File("notok"));
        File.Delete(Path.Combine(dir, "tokenizer.model"));
        string output = tmp.File("out.gguf");
        var r = Export("--model", dir, "--out", output, "--type", "f32");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no tokenizer found", r.Stderr);
        AssertNothingWritten(tmp, output);
    }

    [SkippableFact]
    public void UnknownTypeName()
    {
        using var tmp = new TempDir();
        string output = tmp.File("out.gguf");
        var r = Export("--model", SharedData.Require(SharedData.Stories), "--out", output, "--type", "q3_k_s");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--type must be one of", r.Stderr);
        Assert.Contains("'q3_k_s'", r.Stderr);
        Assert.Contains("q4_k_m", r.Stderr);
        AssertNothingWritten(tmp, output);
    }

    [SkippableFact]
    public void ExistingOutputNeedsForce()
    {
        using var tmp = new TempDir();
        string output = tmp.File("out.gguf");
        File.WriteAllText(output, "keep me");
        string model = SharedData.Require(SharedData.Stories);
        var r = Export("--model", model, "--out", output, "--type", "f32", "--no-validate");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("already exists", r.Stderr);
        Assert.Contains("--force", r.Stderr);
        Assert.Equal("keep me", File.ReadAllText(output));

        var forced = Export("--model", model, "--out", output, "--type", "f32", "--no-validate", "--force");
        Assert.True(forced.ExitCode == 0, forced.ToString());
        Assert.Contains("validation skipped", forced.Stdout);
        using var f = GgufFile.Open(output);
        Assert.Equal(47, f.Tensors.Count);
    }

    [SkippableFact]
    public void MissingOutputFolderAndUsageErrors()
    {
        using var tmp = new TempDir();
        string model = SharedData.Require(SharedData.Stories);
        var r = Export("--model", model, "--out", tmp.File("no/such/dir/out.gguf"), "--type", "f32");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("does not exist", r.Stderr);
        var usage = Export("--model", model, "--type", "f32");
        Assert.Equal(2, usage.ExitCode);
        Assert.Contains("--out is required", usage.Stderr);
        var unknown = Export("--model", model, "--out", tmp.File("o.gguf"), "--type", "f32", "--qaunt", "x");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains("--qaunt", unknown.Stderr);
    }

    [SkippableFact]
    public void AFileLlamaCppReadsDifferentlyFailsAndWritesNothing()
    {
        LlamaCppRequirement.Require();
        // A Mistral model whose sliding window (4 tokens) is shorter than the validation prompts: GGUF's llama
        // architecture cannot say so, llama.cpp attends over every earlier token, and the file is not what the model computes.
        using var tmp = new TempDir();
        string dir = TestModels.CopyStories(tmp.File("mistral"));
        string cfgPath = Path.Combine(dir, "config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
        cfg["architectures"] = new JsonArray("MistralForCausalLM");
        cfg["model_type"] = "mistral";
        cfg["sliding_window"] = 4;
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        string output = tmp.File("out.gguf");
        var r = Export("--model", dir, "--out", output, "--type", "f16");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("faithfulness", r.Stdout);
        Assert.Contains("result: FAIL", r.Stdout);
        Assert.Contains("failed validation", r.Stderr);
        Assert.Contains("differ from the weights as stored", r.Stderr);
        Assert.Contains("--no-validate", r.Stderr);
        AssertNothingWritten(tmp, output);

        // --json prints the failing report as JSON, and still writes nothing.
        var j = Export("--model", dir, "--out", output, "--type", "f16", "--json");
        Assert.Equal(1, j.ExitCode);
        var report = JsonNode.Parse(j.Stdout)!;
        Assert.False((bool)report["passed"]!);
        Assert.False((bool)report["faithfulness"]!["passed"]!);
        AssertNothingWritten(tmp, output);
    }
}
