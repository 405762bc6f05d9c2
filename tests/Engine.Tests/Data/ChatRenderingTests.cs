using Engine.Data;

namespace Engine.Tests.Data;

public class ChatRenderingTests
{
    [Fact]
    public void The_template_hook_gets_the_tokenizer_template_and_its_special_token_strings()
    {
        var tok = new CharTokenizer
        {
            ChatTemplate = "{{ bos_token }}{% for m in messages %}...{% endfor %}",
            SpecialTokenStrings = new Dictionary<string, string> { ["bos_token"] = "<s>", ["eos_token"] = "</s>" },
        };
        Assert.Null(ChatRendering.ForTokenizer(new CharTokenizer(), "model"));
        var previous = ChatRendering.TemplateCompiler;
        try
        {
            ChatRendering.TemplateCompiler = null;
            Assert.Contains("no chat-template engine", Assert.Throws<EngineException>(() => ChatRendering.ForTokenizer(tok, "model")).Message);
            (string Source, string Origin, IReadOnlyDictionary<string, object?> Vars)? seen = null;
            ChatRendering.TemplateCompiler = (source, origin, vars) => { seen = (source, origin, vars); return new ChatMlRenderer(); };
            Assert.IsType<ChatMlRenderer>(ChatRendering.ForTokenizer(tok, "model"));
            Assert.Equal(tok.ChatTemplate, seen!.Value.Source);
            Assert.Equal("model", seen.Value.Origin);
            Assert.Equal("<s>", seen.Value.Vars["bos_token"]);
            Assert.Equal("</s>", seen.Value.Vars["eos_token"]);
        }
        finally { ChatRendering.TemplateCompiler = previous; }
    }

    [Fact]
    public void A_delegate_renderer_passes_messages_and_the_generation_flag()
    {
        var renderer = new DelegateChatRenderer((messages, gen) => $"{messages.Count}:{gen}");
        Assert.Equal("2:True", renderer.Render([new ChatTurn("user", "a"), new ChatTurn("assistant", "b")], true));
    }
}
