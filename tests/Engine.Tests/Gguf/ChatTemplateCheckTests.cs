using System.Text.Json.Nodes;
using Engine.Gguf;
using Engine.Gguf.LlamaCpp;
using Engine.Models;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Gguf;

/// <summary>
/// The chat-template check: the template stored in the GGUF, rendered by llama.cpp's own template support, against
/// Engine's Jinja renderer, for the real templates in ../shared and for templates llama.cpp misreads or does not know.
/// </summary>
public class ChatTemplateCheckTests
{
    /// <summary>stories260K with <paramref name="template"/> as its chat template, exported to F32.</summary>
    static (string Model, string Gguf) Export(TempDir tmp, string template)
    {
        string dir = TestModels.CopyStories(tmp.File("chat"));
        string cfgPath = Path.Combine(dir, "tokenizer_config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
        cfg["chat_template"] = template;
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        string gguf = GgufExporter.Export(dir, tmp.File("chat.gguf"), new GgufExportOptions { Type = GgufExportType.F32 }).OutputPath;
        return (dir, gguf);
    }

    static ChatTemplateComparison Check(string template)
    {
        LlamaCppRequirement.Require();
        using var tmp = new TempDir();
        var (model, gguf) = Export(tmp, template);
        using var loaded = ModelLoader.Load(model, requireTokenizer: true);
        using var llama = LlamaCppModel.Load(gguf, contextLength: 64);
        Assert.Equal(template, llama.ChatTemplate);
        return GgufValidator.CompareChatTemplate(loaded.Tokenizer!, llama)!;
    }

    static string SharedTemplate(string family) =>
        (string)JsonNode.Parse(File.ReadAllText(SharedData.Require($"tokenizers/{family}/tokenizer_config.json")))!["chat_template"]!;

    [SkippableTheory]
    [InlineData("qwen3", ChatTemplateStatus.Identical)]
    [InlineData("llama3", ChatTemplateStatus.IdenticalWithoutBos)]
    [InlineData("gemma3", ChatTemplateStatus.IdenticalWithoutBos)]
    public void RealTemplatesRenderTheSameInLlamaCpp(string family, ChatTemplateStatus expected)
    {
        var c = Check(SharedTemplate(family));
        Assert.True(c.Status == expected, $"{c.Status}\nEngine:    {c.Engine}\nllama.cpp: {c.LlamaCpp}");
        Assert.Contains("What happened next?", c.LlamaCpp);
    }

    [SkippableFact]
    public void ATemplateLlamaCppMistakesForChatMlDiffers()
    {
        // ChatML markers, so llama.cpp picks its built-in ChatML, but this template also writes a system line.
        const string template = "<|im_start|>system\nBe brief.<|im_end|>\n{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        var c = Check(template);
        Assert.Equal(ChatTemplateStatus.Differs, c.Status);
        Assert.True(c.Failed);
        Assert.StartsWith("<|im_start|>system\nBe brief.", c.Engine);
        Assert.StartsWith("<|im_start|>user\n", c.LlamaCpp);
    }

    [SkippableFact]
    public void ATemplateLlamaCppDoesNotKnowIsReportedNotFailed()
    {
        var c = Check("{% for m in messages %}{{ m['role'] | upper }} says: {{ m['content'] }}\n{% endfor %}");
        Assert.Equal(ChatTemplateStatus.NotSupportedByLlamaCpp, c.Status);
        Assert.False(c.Failed);
        Assert.Contains("USER says: What happened next?", c.Engine);
    }
}
