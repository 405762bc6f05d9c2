using System.Diagnostics;
using Engine.Gguf;
using Engine.Gguf.LlamaCpp;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Gguf;

/// <summary>The thin llama.cpp binding: struct layouts checked against the installed llama.h by a C compiler,
/// and real inference on the reference GGUF files.</summary>
public class LlamaCppBindingTests
{
    [SkippableFact]
    public void StructLayoutsMatchTheInstalledHeader()
    {
        LlamaCppRequirement.Require();
        string include = Path.Combine(Path.GetDirectoryName(LlamaCppLibrary.FindLibraryDirectory()!)!, "include");
        Skip.IfNot(File.Exists(Path.Combine(include, "llama.h")), $"{include}/llama.h is absent");
        Skip.If(FindOnPath("cc") is null && FindOnPath("gcc") is null, "no C compiler on PATH");
        using var tmp = new TempDir();
        string source = tmp.File("layout.c");
        File.WriteAllText(source, """
            #include <stddef.h>
            #include <stdio.h>
            #include "llama.h"
            #define P(s, f) printf(#s "." #f " %zu\n", offsetof(struct s, f))
            int main(void) {
              printf("llama_model_params %zu\n", sizeof(struct llama_model_params));
              printf("llama_context_params %zu\n", sizeof(struct llama_context_params));
              printf("llama_batch %zu\n", sizeof(struct llama_batch));
              P(llama_model_params, n_gpu_layers); P(llama_model_params, vocab_only); P(llama_model_params, check_tensors);
              P(llama_context_params, n_ctx); P(llama_context_params, n_batch); P(llama_context_params, n_ubatch);
              P(llama_context_params, n_seq_max); P(llama_context_params, n_threads); P(llama_context_params, n_threads_batch);
              P(llama_context_params, flash_attn_type); P(llama_context_params, type_k); P(llama_context_params, type_v);
              P(llama_context_params, embeddings); P(llama_context_params, no_perf);
              P(llama_batch, token); P(llama_batch, logits);
              printf("LLAMA_FLASH_ATTN_TYPE_DISABLED %d\n", (int)LLAMA_FLASH_ATTN_TYPE_DISABLED);
              return 0;
            }
            """);
        string exe = tmp.File("layout");
        Run(FindOnPath("cc") ?? FindOnPath("gcc")!, $"-I{include} -o {exe} {source}");
        var facts = Run(exe, "").Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ')).ToDictionary(p => p[0], p => int.Parse(p[1]));
        Assert.Equal(LlamaModelParams.SizeInBytes, facts["llama_model_params"]);
        Assert.Equal(LlamaContextParams.SizeInBytes, facts["llama_context_params"]);
        Assert.Equal(LlamaBatch.SizeInBytes, facts["llama_batch"]);
        Assert.Equal(LlamaBatch.SizeInBytes, System.Runtime.CompilerServices.Unsafe.SizeOf<LlamaBatch>());
        Assert.Equal(LlamaModelParams.SizeInBytes, System.Runtime.CompilerServices.Unsafe.SizeOf<LlamaModelParams>());
        Assert.Equal(LlamaContextParams.SizeInBytes, System.Runtime.CompilerServices.Unsafe.SizeOf<LlamaContextParams>());
        Assert.Equal(LlamaModelParams.OffsetNGpuLayers, facts["llama_model_params.n_gpu_layers"]);
        Assert.Equal(LlamaModelParams.OffsetVocabOnly, facts["llama_model_params.vocab_only"]);
        Assert.Equal(LlamaModelParams.OffsetCheckTensors, facts["llama_model_params.check_tensors"]);
        Assert.Equal(LlamaContextParams.OffsetNCtx, facts["llama_context_params.n_ctx"]);
        Assert.Equal(LlamaContextParams.OffsetNBatch, facts["llama_context_params.n_batch"]);
        Assert.Equal(LlamaContextParams.OffsetNUbatch, facts["llama_context_params.n_ubatch"]);
        Assert.Equal(LlamaContextParams.OffsetNSeqMax, facts["llama_context_params.n_seq_max"]);
        Assert.Equal(LlamaContextParams.OffsetNThreads, facts["llama_context_params.n_threads"]);
        Assert.Equal(LlamaContextParams.OffsetNThreadsBatch, facts["llama_context_params.n_threads_batch"]);
        Assert.Equal(LlamaContextParams.OffsetFlashAttnType, facts["llama_context_params.flash_attn_type"]);
        Assert.Equal(LlamaContextParams.OffsetTypeK, facts["llama_context_params.type_k"]);
        Assert.Equal(LlamaContextParams.OffsetTypeV, facts["llama_context_params.type_v"]);
        Assert.Equal(LlamaContextParams.OffsetEmbeddings, facts["llama_context_params.embeddings"]);
        Assert.Equal(LlamaContextParams.OffsetNoPerf, facts["llama_context_params.no_perf"]);
        Assert.Equal(8, facts["llama_batch.token"]);
        Assert.Equal(48, facts["llama_batch.logits"]);
        Assert.Equal(LlamaContextParams.FlashAttentionDisabled, facts["LLAMA_FLASH_ATTN_TYPE_DISABLED"]);
    }

    static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    static string Run(string file, string args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {args} failed: {error}");
        return output;
    }

    [SkippableFact]
    public void ReferenceGgufGreedyFromBosGivesTheReferenceIds()
    {
        LlamaCppRequirement.Require();
        string path = SharedData.Require("models/stories260K/stories260K.gguf");
        using var model = LlamaCppModel.Load(path, contextLength: 64);
        Assert.Equal(512, model.VocabSize);
        Assert.Equal(1, model.BosId);
        Assert.Equal(SharedData.StoriesGreedyIds, model.Greedy(new[] { 1 }, 25));
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
    }
}

/// <summary>The binding's behaviour when llama.cpp is not installed, seen through the command line.</summary>
public class LlamaCppMissingTests
{
    [SkippableFact]
    public void ExportWithoutLlamaCppFailsClearlyAndWritesNothing()
    {
        using var tmp = new TempDir();
        string output = tmp.File("out.gguf");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = SharedData.RepoRoot };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Engine.Cli.dll"));
        foreach (var a in new[] { "export", "--model", SharedData.Require(SharedData.Stories), "--out", output, "--type", "f32" }) psi.ArgumentList.Add(a);
        psi.Environment[LlamaCppLibrary.DirectoryVariable] = tmp.File("no-llama-here");
        using var p = Process.Start(psi)!;
        string stdout = p.StandardOutput.ReadToEnd(), stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 1, $"exit {p.ExitCode}\n{stdout}\n{stderr}");
        Assert.Contains("llama.cpp libraries not found", stderr);
        Assert.Contains(LlamaCppLibrary.DirectoryVariable, stderr);
        Assert.False(File.Exists(output));
        Assert.Empty(Directory.GetFiles(tmp.Path));
    }
}
