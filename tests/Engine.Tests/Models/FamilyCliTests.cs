using System.Text.Json.Nodes;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Models;

/// <summary>`info --json` on a family's model folder and `plan --json` on the new presets, as a user runs them.</summary>
public class FamilyCliTests
{
    [SkippableFact]
    public void InfoJsonReportsTheArchitectureAndTheExactParameterCount()
    {
        var m = FamilyModels.Get(FamilyModels.Gemma3);
        var r = CliRunner.Run("info", "--model", m.Directory, "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("gemma3_text", j["family"]!.GetValue<string>());
        Assert.Equal("Gemma3ForCausalLM", j["architecture"]!.GetValue<string>());
        // The tensors the test wrote, counted from its own list.
        Assert.Equal(FamilyModels.TensorsOf(m.Spec).Sum(t => t.Shape.Aggregate(1L, (a, d) => a * d)), j["parameters"]!.GetValue<long>());
        Assert.Equal(4, j["norms_per_layer"]!.GetValue<int>());
        Assert.True(j["qk_norm"]!.GetValue<bool>());
        Assert.Equal("gelu_tanh", j["activation"]!.GetValue<string>());
        Assert.Equal(8, j["sliding_window"]!.GetValue<int>());
        Assert.Equal("[5]", j["full_attention_layers"]!.ToJsonString());
        Assert.Equal(10000.0, j["rope"]!["local_theta"]!.GetValue<double>());
        Assert.Equal(8.0, j["embedding_scale"]!.GetValue<double>());

        var text = CliRunner.Run("info", "--model", FamilyModels.Get(FamilyModels.Llama3).Directory);
        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Contains("llama3 scaling ×32 (low 1, high 4, original context 48)", text.Stdout);
    }

    [Theory]
    [InlineData("smollm2-135m", 134_515_008L)]
    [InlineData("qwen2.5-0.5b", 494_032_768L)]
    [InlineData("qwen3-0.6b", 596_049_920L)]
    [InlineData("llama-3.2-1b", 1_235_814_400L)]
    [InlineData("gemma-3-1b", 999_885_952L)]
    public void PlanJsonOnTheNewPresets(string preset, long parameters)
    {
        var r = CliRunner.Run("plan", "--model", preset, "--method", "dpo", "--seq-len", "512", "--vram", "8GiB", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var j = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(parameters, j["parameters"]!.GetValue<long>());
        Assert.Equal(parameters, j["architecture"]!["parameters"]!.GetValue<long>());
        Assert.True(j["peak_bytes"]!.GetValue<long>() > parameters * 2);
    }
}
