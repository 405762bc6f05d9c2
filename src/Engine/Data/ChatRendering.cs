using Engine.Tokenization;

namespace Engine.Data;

/// <summary>
/// Finds the chat renderer for a model's tokenizer: its <c>chat_template</c> (Jinja, from tokenizer_config.json)
/// compiled by <see cref="TemplateCompiler"/>, with the template variables bos_token, eos_token, ... bound.
/// </summary>
public static class ChatRendering
{
    /// <summary>
    /// Compiles (template source, origin for errors, variables) into a renderer. The Jinja engine lives in
    /// Engine.Data.ChatTemplates and sets this; it is a hook so this folder builds and tests without it.
    /// </summary>
    public static Func<string, string, IReadOnlyDictionary<string, object?>, IChatRenderer>? TemplateCompiler { get; set; }

    /// <summary>The renderer for the tokenizer's chat template, or null when the tokenizer has none.</summary>
    public static IChatRenderer? ForTokenizer(TextTokenizer tokenizer, string origin)
    {
        if (tokenizer.ChatTemplate is not { Length: > 0 } source) return null;
        var compile = TemplateCompiler
            ?? throw new EngineException($"{origin}: the model has a chat template but this build has no chat-template engine to render it");
        return compile(source, origin, TemplateVariables(tokenizer));
    }

    /// <summary>The special-token strings a template reads (bos_token = "&lt;s&gt;", ...).</summary>
    public static IReadOnlyDictionary<string, object?> TemplateVariables(TextTokenizer tokenizer) =>
        tokenizer.SpecialTokenStrings.ToDictionary(kv => kv.Key, kv => (object?)kv.Value);
}
