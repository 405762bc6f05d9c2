using System.Text.Json.Nodes;
using Engine.Models;

namespace Engine.Tests.Models;

/// <summary>config.json per family: HF's defaults and both RoPE layouts, values Engine does not implement and keys it
/// does not know refused by name, and the presets' published parameter counts.</summary>
public class HfConfigTests
{
    static JsonObject Base(string arch, string type) => new()
    {
        ["architectures"] = new JsonArray(arch), ["model_type"] = type, ["hidden_size"] = 64, ["intermediate_size"] = 128,
        ["num_hidden_layers"] = 6, ["num_attention_heads"] = 4, ["num_key_value_heads"] = 2, ["vocab_size"] = 100,
    };

    static JsonObject Llama() => Base("LlamaForCausalLM", "llama");
    static JsonObject Gemma() => Base("Gemma3ForCausalLM", "gemma3_text");

    static LlamaConfig Read(JsonObject o) => HfConfigReader.FromJson(o, "test/config.json");

    static string Refused(JsonObject o) => Assert.Throws<EngineException>(() => Read(o)).Message;

    static JsonObject With(JsonObject o, string key, JsonNode? value) { o[key] = value; return o; }

    [Fact]
    public void UnknownKeysAreRefusedByName()
    {
        Assert.Contains("unknown key 'quantization_config'", Refused(With(Llama(), "quantization_config", new JsonObject { ["quant_method"] = "gptq" })));
        Assert.Contains("unknown key 'my_special_trick'", Refused(With(Gemma(), "my_special_trick", 1)));
        // A key another family knows is still unknown here: Llama has no sliding window in HF.
        Assert.Contains("unknown key 'sliding_window'", Refused(With(Llama(), "sliding_window", 128)));
        Assert.Contains("unknown key 'mrope_section' for this setting",
            Refused(With(Llama(), "rope_scaling", new JsonObject { ["rope_type"] = "default", ["mrope_section"] = new JsonArray(1, 2) })));
        // Keys that cannot change the forward are accepted.
        var ok = With(With(With(Llama(), "transformers_version", "4.45.0"), "pretraining_tp", 1), "use_cache", true);
        Assert.Equal(64, Read(ok).HiddenSize);
    }

    [Fact]
    public void ValuesEngineDoesNotImplementAreRefused()
    {
        Assert.Contains("attention_bias true", Refused(With(Llama(), "attention_bias", true)));
        Assert.Contains("mlp_bias true", Refused(With(Llama(), "mlp_bias", true)));
        Assert.Contains("hidden_act 'gelu'", Refused(With(Llama(), "hidden_act", "gelu")));
        Assert.Contains("attention_dropout 0.1", Refused(With(Llama(), "attention_dropout", 0.1)));
        Assert.Contains("RoPE type 'yarn'", Refused(With(Llama(), "rope_scaling", new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 })));
        Assert.Contains("partial_rotary_factor 0.5", Refused(With(Llama(), "rope_scaling", new JsonObject { ["rope_type"] = "default", ["partial_rotary_factor"] = 0.5 })));
        Assert.Contains("'llama3' needs 'low_freq_factor'", Refused(With(Llama(), "rope_scaling", new JsonObject { ["rope_type"] = "llama3", ["factor"] = 8.0 })));
        var qwen = Base("Qwen2ForCausalLM", "qwen2");
        Assert.Contains("use_sliding_window true", Refused(With(qwen, "use_sliding_window", true)));
        Assert.Contains("attn_logit_softcapping 50", Refused(With(Gemma(), "attn_logit_softcapping", 50.0)));
        Assert.Contains("hidden_activation 'gelu'", Refused(With(Gemma(), "hidden_activation", "gelu")));
        Assert.Contains("Gemma3ForConditionalGeneration", Refused(Base("Gemma3ForConditionalGeneration", "gemma3")));
        Assert.Contains("does not match architecture", Refused(Base("LlamaForCausalLM", "qwen2")));
    }

    [Fact]
    public void FamilyDefaultsAreHuggingFaces()
    {
        var mistral = Read(Base("MistralForCausalLM", "mistral"));
        Assert.Equal(4096, mistral.SlidingWindow); // MistralConfig's default window
        Assert.Null(Read(With(Base("MistralForCausalLM", "mistral"), "sliding_window", null)).SlidingWindow);
        Assert.Equal(128, Read(Base("Qwen3ForCausalLM", "qwen3")).HeadDim); // Qwen3Config's head_dim
        Assert.Equal(16, Read(Base("Qwen2ForCausalLM", "qwen2")).HeadDim); // hidden / heads
        var gemma = Read(Gemma());
        Assert.Equal(256, gemma.HeadDim);
        Assert.Equal(4096, gemma.SlidingWindow);
        Assert.Equal(6, gemma.SlidingWindowPattern);
        Assert.Equal(10000.0, gemma.LocalRopeTheta);
        Assert.Equal(1_000_000.0, gemma.RopeTheta);
        Assert.Equal(256.0, gemma.QueryPreAttnScalar);
        Assert.True(gemma.TieWordEmbeddings);
        // Layers 5 and 11 of 12 attend fully: every sixth, counted from one.
        var twelve = Read(With(Gemma(), "num_hidden_layers", 12));
        Assert.Equal(new[] { 5, 11 }, Enumerable.Range(0, 12).Where(i => twelve.AttentionOf(i) == LayerAttention.Full));
        Assert.Equal(10000.0, twelve.RopeOf(0).Theta);
        Assert.Equal(1_000_000.0, twelve.RopeOf(5).Theta);
    }

    [Fact]
    public void TransformersFiveLayoutReadsLikeFour()
    {
        var v4 = With(Llama(), "rope_theta", 500000.0);
        v4["rope_scaling"] = new JsonObject
        {
            ["rope_type"] = "llama3", ["factor"] = 32.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192,
        };
        v4["torch_dtype"] = "bfloat16";
        var v5 = Llama();
        v5["rope_parameters"] = new JsonObject
        {
            ["rope_type"] = "llama3", ["rope_theta"] = 500000.0, ["factor"] = 32.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 8192,
        };
        v5["dtype"] = "bfloat16";
        Assert.Equal(Read(v4), Read(v5));

        var g4 = With(With(Gemma(), "rope_theta", 1_000_000.0), "rope_local_base_freq", 10000.0);
        g4["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 8.0 };
        var g5 = Gemma();
        g5["rope_parameters"] = new JsonObject
        {
            ["full_attention"] = new JsonObject { ["rope_type"] = "linear", ["rope_theta"] = 1_000_000.0, ["factor"] = 8.0 },
            ["sliding_attention"] = new JsonObject { ["rope_type"] = "default", ["rope_theta"] = 10000.0 },
        };
        g5["layer_types"] = new JsonArray(Enumerable.Range(0, 6).Select(i => (JsonNode)(i == 5 ? "full_attention" : "sliding_attention")).ToArray());
        var a = Read(g4);
        Assert.Equal(a, Read(g5));
        Assert.Equal(RopeScalingKind.Linear, a.RopeOf(5).Scaling); // the global layers are scaled...
        Assert.Equal(RopeScalingKind.None, a.RopeOf(0).Scaling);   // ...the local ones are not

        var irregular = Gemma();
        irregular["layer_types"] = new JsonArray("sliding_attention", "full_attention", "full_attention", "sliding_attention", "sliding_attention", "full_attention");
        Assert.Contains("every n-th layer", Refused(irregular));
    }

    [Fact]
    public void EveryPresetWritesAndReadsBackItself()
    {
        foreach (var (name, preset) in ModelPresets.All)
            Assert.True(preset == Read(HfConfigWriter.ToJson(preset)), $"{name} does not survive config.json");
    }

    [Fact]
    public void PresetParameterCountsMatchThePublishedModels()
    {
        // Counts of the published checkpoints (the sum of their safetensors tensors; tied heads counted once), each also
        // worked by hand from V·H + L·(attention + biases + q/k norms + 3·H·F + norms·H) + H.
        var expected = new Dictionary<string, long>
        {
            ["smollm2-135m"] = 134_515_008,   // 49152·576 + 30·(576·576 + 2·576·192 + 576·576 + 3·576·1536 + 2·576) + 576
            ["smollm2-360m"] = 361_821_120,   // 49152·960 + 32·(2·960² + 2·960·320 + 3·960·2560 + 2·960) + 960
            ["smollm2-1.7b"] = 1_711_376_384, // 49152·2048 + 24·(4·2048² + 3·2048·8192 + 2·2048) + 2048
            ["qwen2.5-0.5b"] = 494_032_768,   // 151936·896 + 24·(2·896² + 2·896·128 + (896 + 2·128) + 3·896·4864 + 2·896) + 896
            ["qwen2.5-1.5b"] = 1_543_714_304, // 151936·1536 + 28·(2·1536² + 2·1536·256 + (1536 + 2·256) + 3·1536·8960 + 2·1536) + 1536
            ["qwen3-0.6b"] = 596_049_920,     // 151936·1024 + 28·(2·1024·2048 + 2·1024·1024 + 2·128 + 3·1024·3072 + 2·1024) + 1024
            ["qwen3-1.7b"] = 1_720_574_976,   // 151936·2048 + 28·(2·2048·2048 + 2·2048·1024 + 2·128 + 3·2048·6144 + 2·2048) + 2048
            ["llama-3.2-1b"] = 1_235_814_400, // 128256·2048 + 16·(2·2048² + 2·2048·512 + 3·2048·8192 + 2·2048) + 2048
            ["llama-3.2-3b"] = 3_212_749_824, // 128256·3072 + 28·(2·3072² + 2·3072·1024 + 3·3072·8192 + 2·3072) + 3072
            ["gemma-3-1b"] = 999_885_952,     // 262144·1152 + 26·(2·1152·1024 + 2·1152·256 + 2·256 + 3·1152·6912 + 4·1152) + 1152
            ["tinyllama-1.1b"] = 1_100_048_384,
            ["minerva-350m"] = 351_573_120,
        };
        foreach (var (name, count) in expected) Assert.True(count == ModelPresets.Get(name).ParameterCount(), $"{name}: {ModelPresets.Get(name).ParameterCount():N0}");
        // And the count is what a model built from the config holds (biases, q/k norms and Gemma's four norms included).
        foreach (var family in Enum.GetValues<ModelFamily>())
        {
            var c = LlamaConfig.ForFamily(family) with { HiddenSize = 16, IntermediateSize = 24, NumLayers = 2, NumHeads = 2, NumKvHeads = 1, HeadDim = 8, VocabSize = 32 };
            using var model = new LlamaForCausalLM(c);
            Assert.Equal(model.parameters().Sum(p => p.numel()), c.ParameterCount());
            Assert.Equal(model.named_parameters().Select(p => p.name).OrderBy(n => n), HfTensorLayout.Tensors(c).Select(t => t.Name).OrderBy(n => n));
        }
    }
}
