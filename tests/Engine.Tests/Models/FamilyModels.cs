using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Engine.Tokenization;
using static TorchSharp.torch;

namespace Engine.Tests.Models;

/// <summary>A small random-weight model of one family in Hugging Face layout, and what the test knows about it.</summary>
/// <param name="Spec">the hyper-parameters the test wrote into config.json, as its own record (never Engine's parse)</param>
/// <param name="Prompt">token ids long enough for the family's special parts (beyond llama3's original context, past
/// Gemma's window)</param>
public sealed record FamilyModel(string Name, string Directory, LlamaConfig Spec, int[] Prompt)
{
    public string ConfigPath => Path.Combine(Directory, "config.json");
}

/// <summary>
/// Builds one small random-weight Hugging Face folder per family (config.json with the family's real keys as its
/// published checkpoints write them, model.safetensors with the family's tensor names and shapes, the family's real
/// tokenizer from ../shared/tokenizers) once per test run, shared by every test that asks. The vocabularies are the
/// real ones (128k–262k rows), so building is the slow part.
/// </summary>
public static class FamilyModels
{
    public const string Llama3 = "llama3", SmolLm2 = "smollm2", Qwen2 = "qwen2", Qwen3 = "qwen3", Gemma3 = "gemma3";
    public static readonly string[] All = { Llama3, SmolLm2, Qwen2, Qwen3, Gemma3 };

    static readonly ConcurrentDictionary<string, Lazy<FamilyModel>> Built = new();
    const string RootPrefix = "engine-family-models-";

    /// <summary>
    /// The run's folder, named after the process. The test host is often ended without running exit handlers, so each
    /// run also removes the folders of earlier runs whose process is gone (never a live run's).
    /// </summary>
    static readonly Lazy<string> Root = new(() =>
    {
        foreach (var stale in System.IO.Directory.GetDirectories(Path.GetTempPath(), RootPrefix + "*"))
            if (int.TryParse(Path.GetFileName(stale)[RootPrefix.Length..], out int pid) && pid != Environment.ProcessId && !IsRunning(pid))
                try { System.IO.Directory.Delete(stale, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        string root = Path.Combine(Path.GetTempPath(), RootPrefix + Environment.ProcessId);
        if (System.IO.Directory.Exists(root)) System.IO.Directory.Delete(root, true);
        System.IO.Directory.CreateDirectory(root);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { System.IO.Directory.Delete(root, true); } catch (IOException) { } };
        return root;
    });

    static bool IsRunning(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    /// <summary>The family's model, built on first use (skips the test when ../shared is absent).</summary>
    /// <param name="peaked">the variant for judging quantized exports (see <see cref="WriteRandomWeights"/>)</param>
    public static FamilyModel Get(string name, bool peaked = false)
    {
        string tokenizer = SharedData.Require($"tokenizers/{TokenizerOf(name)}");
        return Built.GetOrAdd(peaked ? name + "-peaked" : name, _ => new Lazy<FamilyModel>(() => Build(name, tokenizer, peaked))).Value;
    }

    /// <summary>A folder's model through Engine's loader, without its tokenizer (a 262k-token tokenizer takes seconds to load).</summary>
    public static LlamaForCausalLM LoadModel(string directory)
    {
        using var weights = new SafetensorsWeightSource(directory);
        return ModelLoader.Build(LlamaConfig.Load(Path.Combine(directory, "config.json")), weights, ScalarType.Float32);
    }

    /// <summary>Qwen2 and Qwen3 share Qwen's tokenizer; Llama 3 and SmolLM2-style models use Llama 3's.</summary>
    static string TokenizerOf(string name) => name switch
    {
        Qwen2 or Qwen3 => "qwen3",
        Gemma3 => "gemma3",
        _ => "llama3",
    };

    static FamilyModel Build(string name, string tokenizerDir, bool peaked)
    {
        var (spec, json) = Describe(name);
        string dir = Path.Combine(Root.Value, peaked ? name + "-peaked" : name);
        System.IO.Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        foreach (var f in System.IO.Directory.GetFiles(tokenizerDir)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        WriteRandomWeights(spec, Path.Combine(dir, "model.safetensors"), seed: name.Aggregate(17, (a, ch) => a * 31 + ch), peaked);
        var tokenizer = TokenizerLoader.Load(dir);
        var prompt = tokenizer.Encode(PromptText, addSpecial: true, parseSpecial: false);
        int needed = name switch { Llama3 => 80, Gemma3 => 24, _ => 16 };
        Assert.True(prompt.Length >= needed, $"{name}: the prompt gives {prompt.Length} tokens, fewer than {needed}");
        return new FamilyModel(peaked ? name + "-peaked" : name, dir, spec, prompt.Take(needed).ToArray());
    }

    const string PromptText =
        "Once upon a time, in a small village by the sea, there lived an old fisherman named Tom. Every morning he "
        + "rowed out before sunrise, and every evening he came back with a story. The children gathered around him on the "
        + "pier, because his stories were stranger than the sea itself: whales that sang in Latin, gulls that stole "
        + "spectacles, and a lighthouse that blinked twice for yes and once for no. Nobody believed him, and everybody listened.";

    /// <summary>The spec and the config.json, key for key as the family's published checkpoints write them.</summary>
    static (LlamaConfig Spec, JsonObject Json) Describe(string name)
    {
        JsonObject Common(string arch, string type, LlamaConfig c) => new()
        {
            ["architectures"] = new JsonArray(arch),
            ["model_type"] = type,
            ["attention_dropout"] = 0.0,
            ["hidden_size"] = c.HiddenSize,
            ["initializer_range"] = 0.02,
            ["intermediate_size"] = c.IntermediateSize,
            ["max_position_embeddings"] = c.MaxPositionEmbeddings,
            ["num_attention_heads"] = c.NumHeads,
            ["num_hidden_layers"] = c.NumLayers,
            ["num_key_value_heads"] = c.NumKvHeads,
            ["rms_norm_eps"] = c.RmsNormEps,
            ["rope_theta"] = c.RopeTheta,
            ["tie_word_embeddings"] = c.TieWordEmbeddings,
            ["torch_dtype"] = "float32",
            ["transformers_version"] = "4.51.3",
            ["use_cache"] = true,
            ["vocab_size"] = c.VocabSize,
        };
        switch (name)
        {
            case Llama3:
            {
                // Llama 3.x: θ 500000 and llama3 scaling; the original context is cut to 48 so that an 80-token prompt
                // runs past it, and with head_dim 32 frequency pairs fall in each of the three bands (two blended).
                var c = LlamaConfig.ForFamily(ModelFamily.Llama) with
                {
                    HiddenSize = 64, IntermediateSize = 128, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 32, VocabSize = 128256,
                    MaxPositionEmbeddings = 131072, RmsNormEps = 1e-5, RopeTheta = 500000, RopeScaling = RopeScalingKind.Llama3,
                    RopeScalingFactor = 32, RopeLowFreqFactor = 1, RopeHighFreqFactor = 4, RopeOriginalMaxPositions = 48,
                    TieWordEmbeddings = false, BosTokenId = 128000, EosTokenId = 128001,
                };
                var j = Common("LlamaForCausalLM", "llama", c);
                j["attention_bias"] = false; j["mlp_bias"] = false; j["hidden_act"] = "silu"; j["head_dim"] = c.HeadDim; j["pretraining_tp"] = 1;
                j["bos_token_id"] = 128000; j["eos_token_id"] = new JsonArray(128001, 128008, 128009);
                j["rope_scaling"] = new JsonObject
                {
                    ["factor"] = 32.0, ["high_freq_factor"] = 4.0, ["low_freq_factor"] = 1.0,
                    ["original_max_position_embeddings"] = 48, ["rope_type"] = "llama3",
                };
                return (c, j);
            }
            case SmolLm2:
            {
                var c = LlamaConfig.ForFamily(ModelFamily.Llama) with
                {
                    HiddenSize = 64, IntermediateSize = 160, NumLayers = 3, NumHeads = 4, NumKvHeads = 2, HeadDim = 16, VocabSize = 128256,
                    MaxPositionEmbeddings = 8192, RmsNormEps = 1e-5, RopeTheta = 100000, TieWordEmbeddings = true, BosTokenId = 1, EosTokenId = 2,
                };
                var j = Common("LlamaForCausalLM", "llama", c);
                j["attention_bias"] = false; j["hidden_act"] = "silu"; j["pretraining_tp"] = 1; j["rope_scaling"] = null;
                j["is_llama_config"] = true; j["rope_interleaved"] = false; j["bos_token_id"] = 1; j["eos_token_id"] = 2;
                return (c, j);
            }
            case Qwen2:
            {
                var c = LlamaConfig.ForFamily(ModelFamily.Qwen2) with
                {
                    HiddenSize = 64, IntermediateSize = 144, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 16, VocabSize = 151936,
                    MaxPositionEmbeddings = 32768, RmsNormEps = 1e-6, RopeTheta = 1_000_000, TieWordEmbeddings = true,
                    BosTokenId = 151643, EosTokenId = 151645,
                };
                var j = Common("Qwen2ForCausalLM", "qwen2", c);
                j["hidden_act"] = "silu"; j["max_window_layers"] = 21; j["sliding_window"] = 32768; j["use_sliding_window"] = false;
                j["bos_token_id"] = 151643; j["eos_token_id"] = 151645;
                return (c, j);
            }
            case Qwen3:
            {
                var c = LlamaConfig.ForFamily(ModelFamily.Qwen3) with
                {
                    HiddenSize = 64, IntermediateSize = 128, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 32, VocabSize = 151936,
                    MaxPositionEmbeddings = 40960, RmsNormEps = 1e-6, RopeTheta = 1_000_000, TieWordEmbeddings = false,
                    BosTokenId = 151643, EosTokenId = 151645,
                };
                var j = Common("Qwen3ForCausalLM", "qwen3", c);
                j["attention_bias"] = false; j["head_dim"] = c.HeadDim; j["hidden_act"] = "silu"; j["max_window_layers"] = 28;
                j["rope_scaling"] = null; j["sliding_window"] = null; j["use_sliding_window"] = false;
                j["bos_token_id"] = 151643; j["eos_token_id"] = 151645;
                return (c, j);
            }
            case Gemma3:
            {
                // Gemma 3 1B's shape, narrowed: six layers so that layer 5 is the global one, and a window of 8 tokens.
                var c = LlamaConfig.ForFamily(ModelFamily.Gemma3) with
                {
                    HiddenSize = 64, IntermediateSize = 128, NumLayers = 6, NumHeads = 2, NumKvHeads = 1, HeadDim = 32, VocabSize = 262144,
                    MaxPositionEmbeddings = 32768, RmsNormEps = 1e-6, RopeTheta = 1_000_000, LocalRopeTheta = 10000, SlidingWindow = 8,
                    SlidingWindowPattern = 6, QueryPreAttnScalar = 32, TieWordEmbeddings = true, BosTokenId = 2, EosTokenId = 1, PadTokenId = 0,
                };
                var j = Common("Gemma3ForCausalLM", "gemma3_text", c);
                j["attention_bias"] = false; j["attn_logit_softcapping"] = null; j["cache_implementation"] = "hybrid";
                j["final_logit_softcapping"] = null; j["head_dim"] = c.HeadDim; j["hidden_activation"] = "gelu_pytorch_tanh";
                j["query_pre_attn_scalar"] = 32; j["rope_local_base_freq"] = 10000; j["rope_scaling"] = null; j["sliding_window"] = 8;
                j["sliding_window_pattern"] = 6; j["bos_token_id"] = 2; j["eos_token_id"] = new JsonArray(1, 106); j["pad_token_id"] = 0;
                return (c, j);
            }
            default:
                throw new ArgumentException($"unknown family model '{name}'");
        }
    }

    /// <summary>The family's tensors by HF name and shape, written from the test's own list (not Engine's modules).</summary>
    public static IEnumerable<(string Name, long[] Shape)> TensorsOf(LlamaConfig c)
    {
        long h = c.HiddenSize, q = c.NumHeads * c.HeadDim, kv = c.NumKvHeads * c.HeadDim, f = c.IntermediateSize;
        bool gemma = c.Family == ModelFamily.Gemma3, qwen2 = c.Family == ModelFamily.Qwen2, qkNorm = gemma || c.Family == ModelFamily.Qwen3;
        yield return ("model.embed_tokens.weight", new[] { (long)c.VocabSize, h });
        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            yield return (p + "input_layernorm.weight", new[] { h });
            yield return (p + "self_attn.q_proj.weight", new[] { q, h });
            yield return (p + "self_attn.k_proj.weight", new[] { kv, h });
            yield return (p + "self_attn.v_proj.weight", new[] { kv, h });
            if (qwen2)
            {
                yield return (p + "self_attn.q_proj.bias", new[] { q });
                yield return (p + "self_attn.k_proj.bias", new[] { kv });
                yield return (p + "self_attn.v_proj.bias", new[] { kv });
            }
            yield return (p + "self_attn.o_proj.weight", new[] { h, q });
            if (qkNorm)
            {
                yield return (p + "self_attn.q_norm.weight", new[] { (long)c.HeadDim });
                yield return (p + "self_attn.k_norm.weight", new[] { (long)c.HeadDim });
            }
            yield return (p + "post_attention_layernorm.weight", new[] { h });
            if (gemma)
            {
                yield return (p + "pre_feedforward_layernorm.weight", new[] { h });
                yield return (p + "post_feedforward_layernorm.weight", new[] { h });
            }
            yield return (p + "mlp.gate_proj.weight", new[] { f, h });
            yield return (p + "mlp.up_proj.weight", new[] { f, h });
            yield return (p + "mlp.down_proj.weight", new[] { h, f });
        }
        yield return ("model.norm.weight", new[] { h });
        if (!c.TieWordEmbeddings) yield return ("lm_head.weight", new[] { (long)c.VocabSize, h });
    }

    /// <summary>
    /// Seeded random weights. The default scales them so that activations stay near unit size and attention is far from
    /// uniform (so RoPE, masks and norms all show in the logits): norms around their identity (1, or 0 for Gemma's stored
    /// offset), biases and embeddings around zero. Such a network is chaotic: its top logits are separated by far less
    /// than 4-bit rounding moves them, which no trained model is like. The <paramref name="peaked"/> variant behaves more
    /// like one for judging quantized exports: each layer's output projections (o_proj, down_proj; Gemma's branch-output
    /// norms) make its contribution a small fraction of the residual stream, and the output head equals the embedding,
    /// so the next token stands out clearly (the current one), with logits of a unit or two.
    /// </summary>
    static void WriteRandomWeights(LlamaConfig c, string path, int seed, bool peaked)
    {
        var gen = new Generator((ulong)seed);
        bool offsetNorms = c.Family == ModelFamily.Gemma3;
        var tensors = new List<(string, Tensor)>();
        try
        {
            foreach (var (name, shape) in TensorsOf(c))
            {
                var noise = randn(shape, generator: gen);
                Tensor t;
                if (name.EndsWith("norm.weight"))
                {
                    // Gemma normalises each branch's output; damping those norms is what damps its layers.
                    bool branchOutput = name.Contains("post_attention_layernorm") || name.Contains("post_feedforward_layernorm");
                    t = !peaked ? noise * 0.1 + (offsetNorms ? 0.0 : 1.0)
                        : offsetNorms && branchOutput ? noise * 0.005 - 0.97
                        : noise * 0.02 + (offsetNorms ? 0.0 : 1.0);
                }
                else if (name.EndsWith(".bias")) t = noise * (peaked ? 0.02 : 0.1);
                else if (name.Contains("embed_tokens")) t = noise * (peaked ? 0.023 : 0.1);
                else if (name.StartsWith("lm_head")) t = peaked ? tensors[0].Item2.clone() : noise * 0.1;
                else
                {
                    bool branchOutput = name.Contains("o_proj") || name.Contains("down_proj");
                    t = noise * ((peaked && branchOutput ? 0.004 : 1.0) / Math.Sqrt(shape[1]));
                }
                noise.Dispose();
                tensors.Add((name, t));
            }
            SafetensorsWriter.Write(path, tensors);
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
    }
}
