using Engine.Data;

namespace Engine.Tests.Data;

public class ChatRenderingTests
{
    [Fact]
    public void The_tokenizer_template_renders_with_its_special_token_strings()
    {
        var tok = new CharTokenizer
        {
            ChatTemplate = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
            SpecialTokenStrings = new Dictionary<string, string> { ["bos_token"] = "<s>", ["eos_token"] = "</s>" },
        };
        Assert.Null(ChatRendering.ForTokenizer(new CharTokenizer(), "model"));
        var renderer = ChatRendering.ForTokenizer(tok, "model")!;
        Assert.Equal("<s><user>hi</s><assistant>", renderer.Render([new ChatTurn("user", "hi")], true));
        Assert.Equal("<s><user>hi</s><assistant>yo</s>", renderer.Render([new ChatTurn("user", "hi"), new ChatTurn("assistant", "yo")], false));
    }

    [Fact]
    public void A_delegate_renderer_passes_messages_and_the_generation_flag()
    {
        var renderer = new DelegateChatRenderer((messages, gen) => $"{messages.Count}:{gen}");
        Assert.Equal("2:True", renderer.Render([new ChatTurn("user", "a"), new ChatTurn("assistant", "b")], true));
    }
}
