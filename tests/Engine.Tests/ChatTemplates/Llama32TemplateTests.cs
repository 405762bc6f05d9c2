using Engine.Data.ChatTemplates;

namespace Engine.Tests.ChatTemplates;

/// <summary>The Llama 3.2 template exercises most of what newer templates use: `not x is defined`, strftime_now,
/// reassigning messages, `'key' in message`, tojson(indent=4) for tools, and whitespace control on every tag.</summary>
public class Llama32TemplateTests
{
    const string Bos = "<|begin_of_text|>";
    const string Header = "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n";

    static ChatTemplate Template => ChatTemplate.Parse(RealTemplates.Llama32Instruct, "Llama-3.2-1B-Instruct/tokenizer_config.json")
        .WithClock(() => new DateTime(2024, 7, 26, 12, 0, 0));

    [Fact]
    public void Conversation_with_system_message_and_generation_prompt()
    {
        var messages = new ChatMessage[]
        {
            new("system", "You are a helpful assistant."), new("user", "Hello!"),
            new("assistant", "  Hi there. How can I help?  "), new("user", "What is DPO?"),
        };
        Assert.Equal(
            Bos + Header + "Today Date: 26 Jul 2024\n\nYou are a helpful assistant.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there. How can I help?<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nWhat is DPO?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            Template.Render(messages, true, new Dictionary<string, object?> { ["bos_token"] = Bos }));
    }

    [Fact]
    public void Date_string_variable_and_a_tool_turn()
    {
        // No system message: an empty one is still written. A tool turn's string content is "iterable", so the
        // template JSON-quotes it (as transformers renders it).
        var messages = new ChatMessage[] { new("user", "Hi"), new("tool", "22°C") };
        Assert.Equal(
            Bos + Header + "Today Date: 01 Jan 2042\n\n<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
            "<|start_header_id|>ipython<|end_header_id|>\n\n\"22°C\"<|eot_id|>",
            Template.Render(messages, false, new Dictionary<string, object?> { ["bos_token"] = Bos, ["date_string"] = "01 Jan 2042" }));
    }

    [Fact]
    public void Tools_go_into_the_first_user_turn_as_indented_json()
    {
        var tools = new List<object?> { new Dictionary<string, object?> { ["name"] = "get_time", ["parameters"] = new Dictionary<string, object?>() } };
        Assert.Equal(
            Bos + "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date: December 2023\n" +
            "Today Date: 26 Jul 2024\n\n<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\n" +
            "Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n" +
            "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}.Do not use variables.\n\n" +
            "{\n    \"name\": \"get_time\",\n    \"parameters\": {}\n}\n\n" +
            "What time is it?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            Template.Render(new[] { new ChatMessage("user", " What time is it? ") }, true,
                new Dictionary<string, object?> { ["bos_token"] = Bos, ["tools"] = tools }));
    }

    [Fact]
    public void Tools_without_a_user_turn_raise_the_templates_error()
    {
        var tools = new List<object?> { new Dictionary<string, object?> { ["name"] = "f" } };
        var ex = Assert.Throws<EngineException>(() => Template.Render(new[] { new ChatMessage("system", "s") }, true,
            new Dictionary<string, object?> { ["bos_token"] = Bos, ["tools"] = tools }));
        Assert.Contains("Cannot put tools in the first user message when there's no first user message!", ex.Message);
    }
}
