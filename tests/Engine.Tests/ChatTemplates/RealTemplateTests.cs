using Engine.Data.ChatTemplates;

namespace Engine.Tests.ChatTemplates;

/// <summary>Real models' templates rendered on a three-turn conversation, with and without a system message
/// and a generation prompt. Each expected string is worked out by hand from the template's logic.</summary>
public class RealTemplateTests
{
    const string System = "You are a helpful assistant.";
    // Leading/trailing spaces in the assistant turn tell templates that strip() or trim apart from those that don't.
    const string Answer = "  Hi there. How can I help?  ";

    static readonly ChatMessage[] WithSystem =
    {
        new("system", System), new("user", "Hello!"), new("assistant", Answer), new("user", "What is DPO?"),
    };

    static readonly ChatMessage[] WithoutSystem = WithSystem[1..];

    static string Render(string template, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string bos = "<s>", string eos = "</s>")
        => ChatTemplate.Parse(template, "test template").Render(messages, addGenerationPrompt,
            new Dictionary<string, object?> { ["bos_token"] = bos, ["eos_token"] = eos });

    [Fact]
    public void ChatMl_OpenHermes()
    {
        Assert.Equal(
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" +
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\n  Hi there. How can I help?  <|im_end|>\n" +
            "<|im_start|>user\nWhat is DPO?<|im_end|>\n" +
            "<|im_start|>assistant\n",
            Render(RealTemplates.ChatMlOpenHermes, WithSystem, addGenerationPrompt: true));
        Assert.Equal(
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\n  Hi there. How can I help?  <|im_end|>\n" +
            "<|im_start|>user\nWhat is DPO?<|im_end|>\n",
            Render(RealTemplates.ChatMlOpenHermes, WithoutSystem, addGenerationPrompt: false));
    }

    [Fact]
    public void ChatMl_with_a_default_system_turn()
    {
        const string defaultSystem = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";
        const string turns =
            "<|im_start|>user\nHello!<|im_end|>\n" +
            "<|im_start|>assistant\n  Hi there. How can I help?  <|im_end|>\n" +
            "<|im_start|>user\nWhat is DPO?<|im_end|>\n";
        Assert.Equal(defaultSystem + turns + "<|im_start|>assistant\n",
            Render(RealTemplates.ChatMlSmolLm2, WithoutSystem, addGenerationPrompt: true));
        Assert.Equal("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" + turns,
            Render(RealTemplates.ChatMlSmolLm2, WithSystem, addGenerationPrompt: false));
    }

    [Fact]
    public void Llama2_chat()
    {
        // The system prompt goes inside the first [INST] between <<SYS>> markers; every turn is strip()ped;
        // the template has no generation prompt, so add_generation_prompt changes nothing.
        const string expectedWithSystem =
            "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST]" +
            " Hi there. How can I help? </s>" +
            "<s>[INST] What is DPO? [/INST]";
        Assert.Equal(expectedWithSystem, Render(RealTemplates.Llama2Chat, WithSystem, addGenerationPrompt: true));
        Assert.Equal(expectedWithSystem, Render(RealTemplates.Llama2Chat, WithSystem, addGenerationPrompt: false));
        Assert.Equal("<s>[INST] Hello! [/INST] Hi there. How can I help? </s><s>[INST] What is DPO? [/INST]",
            Render(RealTemplates.Llama2Chat, WithoutSystem, addGenerationPrompt: false));
    }

    [Fact]
    public void Llama3_instruct()
    {
        const string bos = "<|begin_of_text|>";
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is DPO?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            Render(RealTemplates.Llama3Instruct, WithSystem, addGenerationPrompt: true, bos, "<|eot_id|>"));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is DPO?<|eot_id|>",
            Render(RealTemplates.Llama3Instruct, WithoutSystem, addGenerationPrompt: false, bos, "<|eot_id|>"));
    }

    [Fact]
    public void Mistral_instruct_v01()
    {
        // Content is not stripped; each assistant turn ends with eos and a space.
        Assert.Equal("<s>[INST] Hello! [/INST]  Hi there. How can I help?  </s> [INST] What is DPO? [/INST]",
            Render(RealTemplates.MistralInstructV01, WithoutSystem, addGenerationPrompt: true));
        // A system message breaks the user/assistant alternation the template checks first.
        var ex = Assert.Throws<EngineException>(() => Render(RealTemplates.MistralInstructV01, WithSystem, addGenerationPrompt: false));
        Assert.Contains("Conversation roles must alternate user/assistant/user/assistant/...", ex.Message);
    }

    [Fact]
    public void Mistral_instruct_v01_updated_multiline_template()
    {
        // Every tag strips the whitespace before it ({%- / {{-), so indentation and newlines vanish.
        Assert.Equal(
            "<s> [INST] You are a helpful assistant.\n\nHello! [/INST]   Hi there. How can I help?  </s> [INST] What is DPO? [/INST]",
            Render(RealTemplates.MistralInstructV01Updated, WithSystem, addGenerationPrompt: true));
        Assert.Equal(
            "<s> [INST] Hello! [/INST]   Hi there. How can I help?  </s> [INST] What is DPO? [/INST]",
            Render(RealTemplates.MistralInstructV01Updated, WithoutSystem, addGenerationPrompt: false));
    }

    [Fact]
    public void Zephyr()
    {
        // trim_blocks drops the newline after each {% %} tag but not after {{ }}, so each turn ends in "\n".
        Assert.Equal(
            "<|system|>\nYou are a helpful assistant.</s>\n" +
            "<|user|>\nHello!</s>\n" +
            "<|assistant|>\n  Hi there. How can I help?  </s>\n" +
            "<|user|>\nWhat is DPO?</s>\n" +
            "<|assistant|>\n",
            Render(RealTemplates.Zephyr, WithSystem, addGenerationPrompt: true));
        Assert.Equal(
            "<|user|>\nHello!</s>\n" +
            "<|assistant|>\n  Hi there. How can I help?  </s>\n" +
            "<|user|>\nWhat is DPO?</s>\n",
            Render(RealTemplates.Zephyr, WithoutSystem, addGenerationPrompt: false));
    }

    [Fact]
    public void Alternation_violation_raises_the_templates_message()
    {
        var twoUsers = new[] { new ChatMessage("user", "a"), new ChatMessage("user", "b") };
        var ex = Assert.Throws<EngineException>(() => Render(RealTemplates.Llama2Chat, twoUsers, addGenerationPrompt: false));
        Assert.Contains("Conversation roles must alternate user/assistant/user/assistant/...", ex.Message);
        Assert.Contains("test template", ex.Message);
        var updated = Assert.Throws<EngineException>(() => Render(RealTemplates.MistralInstructV01Updated, twoUsers, addGenerationPrompt: false));
        Assert.Contains("After the optional system message, conversation roles must alternate", updated.Message);
        var tool = Assert.Throws<EngineException>(() => Render(RealTemplates.MistralInstructV01Updated,
            new[] { new ChatMessage("user", "a"), new ChatMessage("tool", "b") }, addGenerationPrompt: false));
        Assert.Contains("Only user and assistant roles are supported", tool.Message);
    }

    [Fact]
    public void A_parsed_template_renders_many_conversations()
    {
        var t = ChatTemplate.Parse(RealTemplates.ChatMlOpenHermes, "test");
        var vars = new Dictionary<string, object?>();
        for (int i = 0; i < 3; i++)
            Assert.Equal($"<|im_start|>user\n{i}<|im_end|>\n", t.Render(new[] { new ChatMessage("user", i.ToString()) }, false, vars));
    }
}
