using System.Text;
using System.Text.Json.Nodes;
using Engine.Adapters;
using Engine.Models;
using Engine.Tests.Infrastructure;
using static TorchSharp.torch;

namespace Engine.Tests.Adapters;

/// <summary>PEFT adapter folders Engine did not write: written here byte by byte as PEFT lays them out.</summary>
public class PeftImportTests
{
    /// <summary>A safetensors file of bf16 tensors, written by hand (bf16 = the top 16 bits of each float).</summary>
    static void WriteBf16(string path, IReadOnlyList<(string Name, float[] Values, long[] Shape)> tensors)
    {
        var header = new JsonObject { ["__metadata__"] = new JsonObject { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, values, shape) in tensors)
        {
            header[name] = new JsonObject
            {
                ["dtype"] = "BF16", ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + values.Length * 2),
            };
            offset += values.Length * 2;
        }
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        using var f = File.Create(path);
        f.Write(BitConverter.GetBytes((ulong)json.Length));
        f.Write(json);
        foreach (var (_, values, _) in tensors)
            foreach (var v in values) f.Write(BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)));
    }

    static float Bf16(float v) => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u);

    [SkippableFact]
    public void AForeignAdapterAppliesAsItsMergedWeights()
    {
        string stories = SharedData.Require(SharedData.Stories);
        using var dir = new TempDir();
        string adapter = dir.File("peft");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), """
            {"alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": "karpathy/stories260K", "bias": "none",
             "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "layer_replication": null,
             "layers_pattern": null, "layers_to_transform": [0, 2], "loftq_config": {}, "lora_alpha": 12, "lora_dropout": 0.1,
             "megatron_config": null, "megatron_core": "megatron.core", "modules_to_save": null, "peft_type": "LORA", "r": 4,
             "rank_pattern": {}, "revision": null, "target_modules": ["v_proj", "down_proj"], "task_type": "CAUSAL_LM",
             "use_dora": false, "use_rslora": false}
            """);
        using var baseModel = ModelLoader.Load(stories);
        var rng = new Random(3);
        var expected = new Dictionary<string, Tensor>(); // module → merged weight, computed here in double
        var tensors = new List<(string, float[], long[])>();
        foreach (int layer in new[] { 2, 0 }) // PEFT's key order is not the model's
            foreach (var module in new[] { $"model.layers.{layer}.mlp.down_proj", $"model.layers.{layer}.self_attn.v_proj" })
            {
                var w = baseModel.Model.state_dict()[module + ".weight"];
                long outF = w.shape[0], inF = w.shape[1];
                var a = Enumerable.Range(0, (int)(4 * inF)).Select(_ => Bf16((float)(rng.NextDouble() - 0.5))).ToArray();
                var b = Enumerable.Range(0, (int)(outF * 4)).Select(_ => Bf16((float)(rng.NextDouble() - 0.5) * 0.2f)).ToArray();
                tensors.Add(($"base_model.model.{module}.lora_B.weight", b, new[] { outF, 4L }));
                tensors.Add(($"base_model.model.{module}.lora_A.weight", a, new[] { 4L, inF }));
                var A = tensor(a.Select(v => (double)v).ToArray()).view(4, inF);
                var B = tensor(b.Select(v => (double)v).ToArray()).view(outF, 4);
                expected[module] = w.to(ScalarType.Float64) + B.matmul(A) * (12.0 / 4);
            }
        WriteBf16(Path.Combine(adapter, "adapter_model.safetensors"), tensors);

        using var adapted = AdaptedModel.Load(stories, adapter, ScalarType.Float32, requireTokenizer: false);
        Assert.Equal(4, adapted.Adapters!.Layers.Count);
        Assert.Equal(3.0, adapted.Adapters.Layers[0].Layer.Scaling);
        using var merged = ModelLoader.Load(stories);
        using (no_grad())
            foreach (var (module, w) in expected) merged.Model.state_dict()[module + ".weight"].copy_(w);
        var ids = tensor(new long[] { 1, 403, 407, 261, 378, 10, 99 }).view(1, 7);
        using var got = adapted.Model.Forward(ids);
        using var want = merged.Model.Forward(ids);
        Assert.True((got - want).abs().max().item<float>() < 1e-4, $"max difference {(got - want).abs().max().item<float>()}");
    }

    [SkippableTheory]
    [InlineData("\"use_dora\": true", "DoRA")]
    [InlineData("\"rank_pattern\": {\"q_proj\": 8}", "rank_pattern")]
    [InlineData("\"peft_type\": \"IA3\"", "peft_type IA3")]
    [InlineData("\"bias\": \"all\"", "bias")]
    public void WhatCannotBeAppliedExactlyIsRefusedByName(string setting, string message)
    {
        string stories = SharedData.Require(SharedData.Stories);
        using var dir = new TempDir();
        string adapter = dir.File("peft");
        Directory.CreateDirectory(adapter);
        var config = JsonNode.Parse("""{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}""")!.AsObject();
        var extra = JsonNode.Parse("{" + setting + "}")!.AsObject();
        foreach (var (k, v) in extra.ToList()) { extra.Remove(k); config[k] = v; }
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), config.ToJsonString());
        WriteBf16(Path.Combine(adapter, "adapter_model.safetensors"), new[] { ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", new float[4 * 64], new long[] { 4, 64 }) });
        using var model = ModelLoader.Load(stories);
        var e = Assert.Throws<EngineException>(() => PeftAdapterFolder.Load(model.Model, adapter));
        Assert.Contains(message, e.Message);
    }
}
