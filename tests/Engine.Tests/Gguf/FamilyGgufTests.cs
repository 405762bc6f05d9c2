using System.Collections.Concurrent;
using Engine.Generation;
using Engine.Gguf;
using Engine.Gguf.LlamaCpp;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tests.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Engine.Tests.Gguf;

/// <summary>
/// Each family's small random-weight model (<see cref="FamilyModels"/>) exported to GGUF and run by real llama.cpp
/// (F32 K/V cache, flash attention off): the last position's logits and a greedy continuation agree with Engine's,
/// the file's architecture, tensors and metadata are the converter's, importing it gives the same model back, and every
/// export type passes validation.
/// </summary>
public class FamilyGgufTests
{
    readonly ITestOutputHelper _out;
    public FamilyGgufTests(ITestOutputHelper output) => _out = output;

    public static TheoryData<string> Families => new(FamilyModels.All);

    static readonly ConcurrentDictionary<string, Lazy<string>> F32Exports = new();

    /// <summary>The family's F32 export, written once per run next to the model folder.</summary>
    static string F32(FamilyModel m) => F32Exports.GetOrAdd(m.Name, _ => new Lazy<string>(() =>
        GgufExporter.Export(m.Directory, m.Directory + ".f32.gguf", new GgufExportOptions { Type = GgufExportType.F32 }).OutputPath)).Value;

    static float[] EngineLastLogits(LlamaForCausalLM model, int[] ids)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var input = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Length });
        return model.Forward(input)[0, ids.Length - 1].contiguous().data<float>().ToArray();
    }

    static string ExpectedArchitecture(string family) => family switch
    {
        FamilyModels.Qwen2 => "qwen2",
        FamilyModels.Qwen3 => "qwen3",
        FamilyModels.Gemma3 => "gemma3",
        _ => "llama",
    };

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void F32ExportRunsInLlamaCppWithEnginesLogitsAndGreedyTokens(string family)
    {
        LlamaCppRequirement.Require();
        var m = FamilyModels.Get(family);
        string gguf = F32(m);
        using var model = FamilyModels.LoadModel(m.Directory);
        const int steps = 12;
        using var llama = LlamaCppModel.Load(gguf, contextLength: m.Prompt.Length + steps + 8);
        Assert.Equal(m.Spec.VocabSize, llama.VocabSize);
        var theirs = llama.Logits(m.Prompt)[^1];
        var ours = EngineLastLogits(model, m.Prompt);
        double maxDiff = ours.Zip(theirs).Max(p => Math.Abs((double)p.First - p.Second));
        var engineGreedy = new TextGenerator(model, eosId: null)
            .Generate(new[] { m.Prompt }, new SamplingOptions { MaxNewTokens = steps, Temperature = 0, StopAtEos = false })[0];
        var llamaGreedy = llama.Greedy(m.Prompt, steps);
        _out.WriteLine($"{family}: last-position logits max |Δ| Engine vs llama.cpp {maxDiff:E2}; greedy Engine [{string.Join(",", engineGreedy)}] llama.cpp [{string.Join(",", llamaGreedy)}]");
        Assert.Equal(engineGreedy, llamaGreedy);
        if (m.Spec.Activation == MlpActivation.GeluTanh)
        {
            // ggml's CPU GELU reads a table indexed by the f16 rounding of its input and returns an f16 value
            // (GGML_GELU_FP16 in ggml-cpu/vec.h); HF's gelu_pytorch_tanh is exact. That rounding is most of the
            // difference: with it emulated in Engine's MLP, what remains is a small fraction (f16 roundings that land
            // on the other side of a half-ulp where the two tanh implementations differ in their last bit).
            Assert.True(maxDiff < 1e-2, $"{family}: last-position logits differ from llama.cpp's by {maxDiff:E3}");
            foreach (var layer in model.model.layers) layer.mlp.Activation = GgmlF16TableGelu;
            double emulated = EngineLastLogits(model, m.Prompt).Zip(theirs).Max(p => Math.Abs((double)p.First - p.Second));
            _out.WriteLine($"{family}: with ggml's f16 GELU table emulated in Engine: max |Δ| {emulated:E2}");
            Assert.True(emulated < maxDiff / 4 && emulated < 1e-3, $"{family}: with the f16 GELU emulated, logits still differ by {emulated:E3} (from {maxDiff:E3})");
            return;
        }
        Assert.True(maxDiff < 1e-4, $"{family}: last-position logits differ from llama.cpp's by {maxDiff:E3}");
    }

    /// <summary>ggml_vec_geglu_f32's GELU: |x| ≥ 10 passes through (or gives 0), else the f16 table of tanh-GELU at f16(x).</summary>
    static Tensor GgmlF16TableGelu(Tensor x)
    {
        using var scope = NewDisposeScope();
        var xh = x.to(ScalarType.Float16).to(ScalarType.Float32);
        var gelu = (0.5f * xh * (1.0f + (0.7978845608f * xh * (1.0f + 0.044715f * xh * xh)).tanh())).to(ScalarType.Float16).to(ScalarType.Float32);
        var result = where(x <= -10f, zeros_like(x), where(x >= 10f, x, gelu));
        return result.MoveToOuterDisposeScope();
    }

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void F32FileHasTheConvertersArchitectureTensorsAndMetadata(string family)
    {
        var m = FamilyModels.Get(family);
        using var f = GgufFile.Open(F32(m));
        string arch = ExpectedArchitecture(family);
        var c = m.Spec;
        Assert.Equal(arch, f.Metadata["general.architecture"].Value);
        Assert.Equal((uint)c.NumLayers, f.Metadata[$"{arch}.block_count"].Value);
        Assert.Equal((uint)c.HiddenSize, f.Metadata[$"{arch}.embedding_length"].Value);
        Assert.Equal((uint)c.IntermediateSize, f.Metadata[$"{arch}.feed_forward_length"].Value);
        Assert.Equal((uint)c.NumHeads, f.Metadata[$"{arch}.attention.head_count"].Value);
        Assert.Equal((uint)c.NumKvHeads, f.Metadata[$"{arch}.attention.head_count_kv"].Value);
        Assert.Equal((uint)c.MaxPositionEmbeddings, f.Metadata[$"{arch}.context_length"].Value);
        Assert.Equal((float)c.RopeTheta, f.Metadata[$"{arch}.rope.freq_base"].Value);
        Assert.Equal((float)c.RmsNormEps, f.Metadata[$"{arch}.attention.layer_norm_rms_epsilon"].Value);
        Assert.False(f.Metadata.ContainsKey($"{arch}.rope.scaling.type")); // llama3 scaling travels as rope_freqs

        // Tensor names per llama.cpp (gguf-py's MODEL_TENSOR names), 1-D tensors in F32, output tied where HF ties it.
        var names = f.Tensors.Select(t => t.Name).ToHashSet();
        Assert.Equal(!c.TieWordEmbeddings, names.Contains("output.weight"));
        string[] perLayer = family switch
        {
            FamilyModels.Qwen2 => new[] { "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q.bias", "attn_k.bias", "attn_v.bias", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down" },
            FamilyModels.Qwen3 => new[] { "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm", "attn_k_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down" },
            FamilyModels.Gemma3 => new[] { "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm", "attn_k_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm", "ffn_gate", "ffn_up", "ffn_down" },
            _ => new[] { "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down" },
        };
        var expected = new[] { "token_embd.weight", "output_norm.weight" }
            .Concat(c.TieWordEmbeddings ? Array.Empty<string>() : new[] { "output.weight" })
            .Concat(family == FamilyModels.Llama3 ? new[] { GgufArchitecture.RopeFrequencies } : Array.Empty<string>())
            .Concat(Enumerable.Range(0, c.NumLayers).SelectMany(l => perLayer.Select(n => $"blk.{l}.{n}" + (n.EndsWith(".bias") ? "" : ".weight"))))
            .ToHashSet();
        Assert.Equal(expected.OrderBy(n => n), names.OrderBy(n => n));
        Assert.All(f.Tensors.Where(t => t.Dims.Length == 1), t => Assert.Equal(GgmlType.F32, t.Type));

        using var hf = new SafetensorsWeightSource(m.Directory);
        float[] Hf(string name) { using var t = hf.Read(name); return t.contiguous().data<float>().ToArray(); }
        switch (family)
        {
            case FamilyModels.Llama3:
                // rope_freqs: the converter's divisors for θ 500000, head_dim 32, factor 32, bands at 48/4 and 48 tokens,
                // computed here from its formula in doubles.
                Assert.Equal((uint)c.HeadDim, f.Metadata["llama.rope.dimension_count"].Value);
                Assert.Equal((uint)c.VocabSize, f.Metadata["llama.vocab_size"].Value);
                var divisors = f.DecodeToArray(f.Tensor(GgufArchitecture.RopeFrequencies));
                var expectedDivisors = Enumerable.Range(0, c.HeadDim / 2).Select(i =>
                {
                    double wavelen = 2 * Math.PI * Math.Pow(c.RopeTheta, 2.0 * i / c.HeadDim), old = c.RopeOriginalMaxPositions;
                    if (wavelen < old / 4) return 1.0;
                    if (wavelen > old) return 32.0;
                    double smooth = (old / wavelen - 1) / (4 - 1);
                    return 1 / ((1 - smooth) / 32 + smooth);
                }).ToArray();
                // The test model puts pairs in all three bands: kept, blended (two of them) and divided by the factor.
                Assert.Equal(1.0, expectedDivisors[0]);
                Assert.Equal(2, expectedDivisors.Count(d => d > 1 && d < 32));
                Assert.Equal(32.0, expectedDivisors[^1]);
                for (int i = 0; i < divisors.Length; i++) Assert.True(Math.Abs(divisors[i] - expectedDivisors[i]) < 1e-5 * expectedDivisors[i], $"rope_freqs[{i}] {divisors[i]} vs {expectedDivisors[i]}");
                // q is interleaved per head (llama's NORM RoPE): HF row (h, j, i) is stored at (h, i, j).
                var q = Hf("model.layers.0.self_attn.q_proj.weight");
                var stored = f.DecodeToArray(f.Tensor("blk.0.attn_q.weight"));
                int half = c.HeadDim / 2, cols = c.HiddenSize;
                for (int h = 0; h < c.NumHeads; h++)
                    for (int j = 0; j < 2; j++)
                        for (int i = 0; i < half; i++)
                            Assert.Equal(q[((h * 2 + j) * half + i) * cols + 3], stored[((h * half + i) * 2 + j) * cols + 3]);
                break;
            case FamilyModels.Qwen2:
                // NEOX RoPE: q and its bias are stored in HF order.
                Assert.Equal(Hf("model.layers.1.self_attn.q_proj.bias"), f.DecodeToArray(f.Tensor("blk.1.attn_q.bias")));
                Assert.Equal(Hf("model.layers.1.self_attn.q_proj.weight"), f.DecodeToArray(f.Tensor("blk.1.attn_q.weight")));
                break;
            case FamilyModels.Qwen3:
                Assert.Equal((uint)c.HeadDim, f.Metadata["qwen3.attention.key_length"].Value);
                Assert.Equal(Hf("model.layers.0.self_attn.k_norm.weight"), f.DecodeToArray(f.Tensor("blk.0.attn_k_norm.weight")));
                break;
            case FamilyModels.Gemma3:
                Assert.Equal((uint)c.SlidingWindow!, f.Metadata["gemma3.attention.sliding_window"].Value);
                Assert.Equal((float)c.LocalRopeTheta!, f.Metadata["gemma3.rope.freq_base_swa"].Value);
                Assert.Equal((uint)c.HeadDim, f.Metadata["gemma3.attention.key_length"].Value);
                Assert.False(f.Metadata.ContainsKey("gemma3.attention.sliding_window_pattern")); // llama.cpp's built-in 6
                // Norms are stored as 1 + w (Gemma3RMSNorm's factor), every one of them.
                foreach (var (hfName, ggufName) in new[]
                {
                    ("model.layers.2.post_attention_layernorm.weight", "blk.2.post_attention_norm.weight"),
                    ("model.layers.2.pre_feedforward_layernorm.weight", "blk.2.ffn_norm.weight"),
                    ("model.layers.2.post_feedforward_layernorm.weight", "blk.2.post_ffw_norm.weight"),
                    ("model.layers.2.self_attn.q_norm.weight", "blk.2.attn_q_norm.weight"),
                    ("model.norm.weight", "output_norm.weight"),
                })
                    Assert.Equal(Hf(hfName).Select(w => w + 1f), f.DecodeToArray(f.Tensor(ggufName)));
                break;
        }
    }

    [SkippableFact]
    public void GemmaFinalLogitSoftcappingTravelsThroughGguf()
    {
        LlamaCppRequirement.Require();
        var m = FamilyModels.Get(FamilyModels.Gemma3);
        using var tmp = new TempDir();
        string dir = tmp.File("capped");
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(m.Directory)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!.AsObject();
        config["final_logit_softcapping"] = 2.0;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var result = GgufExporter.Export(dir, tmp.File("capped.gguf"), new GgufExportOptions { Type = GgufExportType.F32 });
        using (var f = GgufFile.Open(result.OutputPath)) Assert.Equal(2f, f.Metadata["gemma3.final_logit_softcapping"].Value);
        using var back = ModelLoader.Load(result.OutputPath);
        Assert.Equal(2.0, back.Config.FinalLogitSoftcapping);
        using var model = FamilyModels.LoadModel(dir);
        var ours = EngineLastLogits(model, m.Prompt);
        using var llama = LlamaCppModel.Load(result.OutputPath, contextLength: m.Prompt.Length + 8);
        var theirs = llama.Logits(m.Prompt)[^1];
        Assert.True(theirs.Max() < 2 && theirs.Min() > -2, "llama.cpp's logits are not capped at ±2");
        Assert.True(ours.Max() < 2 && ours.Min() > -2, "Engine's logits are not capped at ±2");
        Assert.Equal(LlamaCppModel.ArgMax(ours), LlamaCppModel.ArgMax(theirs));
        double maxDiff = ours.Zip(theirs).Max(p => Math.Abs((double)p.First - p.Second));
        Assert.True(maxDiff < 1e-2, $"capped logits differ by {maxDiff:E3}"); // GeGLU: ggml's f16 GELU (see above)
    }

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void ImportingTheExportGivesTheSameModel(string family)
    {
        var m = FamilyModels.Get(family);
        using var source = ModelLoader.Load(m.Directory, requireTokenizer: true);
        using var back = ModelLoader.Load(F32(m), requireTokenizer: true);
        // Token ids come from the tokenizer in a GGUF file; everything that defines the network must come back.
        var ids = (LlamaConfig c) => c with { BosTokenId = null, EosTokenId = null, PadTokenId = null };
        Assert.Equal(ids(m.Spec), ids(back.Config));
        var a = EngineLastLogits(source.Model, m.Prompt);
        var b = EngineLastLogits(back.Model, m.Prompt);
        double maxDiff = a.Zip(b).Max(p => Math.Abs((double)p.First - p.Second));
        _out.WriteLine($"{family}: imported F32 GGUF vs source, last-position logits max |Δ| {maxDiff:E2}");
        Assert.True(maxDiff < 1e-5, $"{family}: the imported model's logits differ by {maxDiff:E3}");
        foreach (var text in new[] { "Hello, world!", "  spaces\tand\nnewlines", "日本語 🙂" })
            Assert.Equal(source.Tokenizer!.Encode(text), back.Tokenizer!.Encode(text));
    }

    /// <summary>
    /// The quantized types the CLI is used with (q8_0, q4_k_m) on every family, and each remaining type on one family in
    /// turn, so every type meets every architecture's tensor set across the matrix without 35 validations per run.
    /// </summary>
    public static TheoryData<string, string> FamiliesAndTypes
    {
        get
        {
            var data = new TheoryData<string, string>();
            foreach (var f in FamilyModels.All)
                foreach (var t in new[] { "q8_0", "q4_k_m" })
                    data.Add(f, t);
            data.Add(FamilyModels.Llama3, "f16");
            data.Add(FamilyModels.Qwen2, "bf16");
            data.Add(FamilyModels.Qwen3, "q4_0");
            data.Add(FamilyModels.SmolLm2, "q6_k");
            data.Add(FamilyModels.Gemma3, "f32"); // GeGLU: llama.cpp's f16 GELU table counts as F16 rounding
            return data;
        }
    }

    [SkippableTheory]
    [MemberData(nameof(FamiliesAndTypes))]
    public void EveryExportTypeValidates(string family, string typeName)
    {
        LlamaCppRequirement.Require();
        // Quantization is judged on the variant whose next token stands out as a trained model's does (FamilyModels).
        var m = FamilyModels.Get(family, peaked: true);
        var type = GgufExportTypes.Parse(typeName);
        using var tmp = new TempDir();
        var result = GgufExporter.Export(m.Directory, tmp.File("x.gguf"), new GgufExportOptions { Type = type });
        using var loaded = ModelLoader.Load(m.Directory, requireTokenizer: true);
        var report = GgufValidator.Validate(loaded.Model, loaded.Tokenizer!, result.OutputPath, type);
        _out.WriteLine(report.Format());
        Assert.True(report.Passed, report.Format());
    }
}

/// <summary>The validation's tokenizer comparison: which differences are explained by llama.cpp's own rules.</summary>
public class TokenizerComparisonTests
{
    [Fact]
    public void ControlOverrideExplainsOnlyWhatSpecialParsingReconciles()
    {
        // Gemma 3: HF keeps "</s>" whole (an ordinary added token); llama.cpp makes it a control token by its text.
        var explained = new TokenizerComparison("a </s>", new[] { 2, 9, 212 }, new[] { 2, 9, 1454, 236751, 236813 }, null,
            EngineParsingSpecials: new[] { 2, 9, 212 }, LlamaCppParsingSpecials: new[] { 2, 9, 212 });
        Assert.True(explained.ExplainedByControlOverride);
        var real = explained with { LlamaCppParsingSpecials = new[] { 2, 9, 213 } };
        Assert.False(real.ExplainedByControlOverride);
        Assert.False((explained with { EngineParsingSpecials = null, LlamaCppParsingSpecials = null }).ExplainedByControlOverride);
        Assert.False(new TokenizerComparison("x", new[] { 1 }, new[] { 1 }, null, new[] { 1 }, new[] { 1 }).ExplainedByControlOverride); // agrees anyway
        Assert.Contains("</s>", GgufValidator.LlamaCppControlTexts);
    }
}
