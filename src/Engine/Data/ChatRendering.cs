using Engine.Data.ChatTemplates;
using Engine.Tokenization;

namespace Engine.Data;

/// <summary>
/// Finds the chat renderer for a model's tokenizer: its <c>chat_template</c> (Jinja, from tokenizer_config.json)
/// compiled by the Jinja interpreter in <see cref="ChatTemplates"/>, with the template variables bos_token, eos_token, ... bound.
/// </summary>
public static class ChatRendering
{
    /// <summary>The renderer for the tokenizer's chat template, or null when the tokenizer has none.</summary>
    public static IChatRenderer? ForTokenizer(TextTokenizer tokenizer, string origin)
    {
        if (tokenizer.ChatTemplate is not { Length: > 0 } source) return null;
        var template = ChatTemplate.Parse(source, origin);
        var variables = TemplateVariables(tokenizer);
        return new DelegateChatRenderer((turns, addGenerationPrompt) =>
            template.Render(turns.Select(t => new ChatMessage(t.Role, t.Content)).ToList(), addGenerationPrompt, variables));
    }

    /// <summary>The special-token strings a template reads (bos_token = "&lt;s&gt;", ...).</summary>
    public static IReadOnlyDictionary<string, object?> TemplateVariables(TextTokenizer tokenizer) =>
        tokenizer.SpecialTokenStrings.ToDictionary(kv => kv.Key, kv => (object?)kv.Value);
}
