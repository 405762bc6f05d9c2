using Engine.Data.ChatTemplates;
using Engine.Tests.Tokenization;
using Engine.Tokenization;

namespace Engine.Tests.ChatTemplates;

/// <summary>
/// The chat templates of the real tokenizer_config.json files in ../shared/tokenizers, rendered through the
/// tokenizer Engine loads from each folder (its bos_token and friends bound). The expected strings are worked out
/// by reading each template, independently of the renderer.
/// </summary>
public class SharedTokenizerTemplateTests
{
    static readonly ChatMessage[] WithSystem =
    {
        new("system", "Be brief."), new("user", " Hi! "), new("assistant", "Hello."), new("user", "What is 2+2?"),
    };

    static string Render(string name, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, params (string Key, object? Value)[] extra)
    {
        var tokenizer = RealTokenizers.Engine(name);
        var template = ChatTemplate.Parse(tokenizer.ChatTemplate ?? throw new InvalidOperationException($"{name} has no chat template"), name);
        var variables = Engine.Data.ChatRendering.TemplateVariables(tokenizer).ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var (k, v) in extra) variables[k] = v;
        return template.Render(messages, addGenerationPrompt, variables);
    }

    [SkippableFact]
    public void Qwen3_two_turns_with_system_and_generation_prompt()
    {
        // No tools: the system turn is written first; every user turn as ChatML; the assistant turn before the last
        // user query is written as is (no <think> block); the generation prompt opens an assistant turn.
        const string expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi! <|im_end|>\n"
            + "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";
        Assert.Equal(expected, Render("qwen3", WithSystem, addGenerationPrompt: true));
        Assert.Equal(expected, Render("qwen3", WithSystem, addGenerationPrompt: true, ("enable_thinking", true)));
        // enable_thinking=false closes an empty think block in the prompt.
        Assert.Equal(expected + "<think>\n\n</think>\n\n", Render("qwen3", WithSystem, addGenerationPrompt: true, ("enable_thinking", false)));
        // Without the generation prompt the text ends after the last user turn.
        Assert.Equal(expected[..^"<|im_start|>assistant\n".Length], Render("qwen3", WithSystem, addGenerationPrompt: false));
    }

    [SkippableFact]
    public void Qwen3_final_assistant_turn_gets_its_think_block()
    {
        // The assistant turn after the last user query is the one being trained: its reasoning is split off at
        // </think> and rewritten as a <think> block; without reasoning the block is empty.
        var thinking = new[] { new ChatMessage("user", "What is 2+2?"), new ChatMessage("assistant", "<think>\nadd them\n</think>\n\n4") };
        Assert.Equal("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd them\n</think>\n\n4<|im_end|>\n",
            Render("qwen3", thinking, addGenerationPrompt: false));
        var plain = new[] { new ChatMessage("user", "What is 2+2?"), new ChatMessage("assistant", "4") };
        Assert.Equal("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n",
            Render("qwen3", plain, addGenerationPrompt: false));
    }

    [SkippableFact]
    public void Llama3_two_turns_with_system_and_generation_prompt()
    {
        // BOS before the first header; each content trimmed ("| trim" binds tighter than "+"); two newlines after each header.
        const string expected = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n";
        Assert.Equal(expected, Render("llama3", WithSystem, addGenerationPrompt: true));
        Assert.Equal(expected[..^"<|start_header_id|>assistant<|end_header_id|>\n\n".Length], Render("llama3", WithSystem, addGenerationPrompt: false));
    }

    [SkippableFact]
    public void Gemma3_folds_the_system_turn_into_the_first_user_turn()
    {
        // BOS, then the system text and a blank line at the start of the first user turn; assistant is "model";
        // contents trimmed; the generation prompt opens a model turn.
        const string expected = "<bos><start_of_turn>user\nBe brief.\n\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
            + "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n";
        Assert.Equal(expected, Render("gemma3", WithSystem, addGenerationPrompt: true));
        var noSystem = WithSystem[1..];
        Assert.Equal("<bos><start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n",
            Render("gemma3", noSystem, addGenerationPrompt: false));
        var e = Assert.Throws<EngineException>(() => Render("gemma3", new[] { new ChatMessage("user", "a"), new ChatMessage("user", "b") }, false));
        Assert.Contains("Conversation roles must alternate", e.Message);
    }

    [SkippableTheory]
    [InlineData("qwen3")]
    [InlineData("llama3")]
    [InlineData("gemma3")]
    public void Rendered_conversations_tokenize_like_Hugging_Face(string name)
    {
        // The chat text carries its special tokens as strings; they must come out as single special ids.
        var tokenizer = RealTokenizers.Engine(name);
        var oracle = RealTokenizers.Oracle(name);
        string text = Render(name, WithSystem, addGenerationPrompt: true);
        var ids = tokenizer.Encode(text, addSpecial: false);
        Assert.Equal(oracle.Encode(text, addSpecial: false), ids);
        Assert.True(ids.Count(tokenizer.IsSpecial) >= 8, $"{name}: the turn markers should be special tokens");
    }

    [SkippableFact]
    public void Mistral_v01_ships_no_template()
    {
        Assert.Null(RealTokenizers.Engine("mistral-v0.1").ChatTemplate);
    }
}
