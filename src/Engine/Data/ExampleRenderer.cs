namespace Engine.Data;

/// <summary>A paired example as the strings that are tokenised.</summary>
public sealed record RenderedPair(string Prompt, string Chosen, string Rejected);

/// <summary>An unpaired example as the strings that are tokenised.</summary>
public sealed record RenderedCompletion(string Prompt, string Completion);

/// <summary>
/// Text rows pass through; conversational rows are rendered TRL's way (maybe_apply_chat_template): the prompt with
/// the generation prompt appended, and each completion as render(prompt + completion) with the rendered prompt
/// removed from its start — an error when the template does not render the prompt as a prefix.
/// </summary>
public static class ExampleRenderer
{
    public static RenderedPair Render(PreferenceExample example, IChatRenderer? renderer)
    {
        if (!example.Chosen.IsConversational)
            return new RenderedPair(example.Prompt.Text!, example.Chosen.Text!, example.Rejected.Text!);
        var chat = Require(renderer, example.Source);
        string prompt = RenderPrompt(chat, example.Prompt.Messages!, example.Source);
        return new RenderedPair(prompt,
            RenderCompletion(chat, example.Prompt.Messages!, prompt, example.Chosen.Messages!, example.Source, "chosen"),
            RenderCompletion(chat, example.Prompt.Messages!, prompt, example.Rejected.Messages!, example.Source, "rejected"));
    }

    public static RenderedCompletion Render(UnpairedExample example, IChatRenderer? renderer)
    {
        if (!example.Completion.IsConversational)
            return new RenderedCompletion(example.Prompt.Text!, example.Completion.Text!);
        var chat = Require(renderer, example.Source);
        string prompt = RenderPrompt(chat, example.Prompt.Messages!, example.Source);
        return new RenderedCompletion(prompt, RenderCompletion(chat, example.Prompt.Messages!, prompt, example.Completion.Messages!, example.Source, "completion"));
    }

    static IChatRenderer Require(IChatRenderer? renderer, RowSource source) => renderer
        ?? throw new EngineException($"{source}: conversational rows need the model's chat template to become text, and the model has none " +
                                     "(no chat_template in tokenizer_config.json)");

    static string RenderPrompt(IChatRenderer chat, IReadOnlyList<ChatTurn> prompt, RowSource source)
    {
        if (prompt.Count == 0) throw new EngineException($"{source}: the prompt has no messages");
        string lastRole = prompt[^1].Role;
        // TRL adds the generation prompt after a final user turn; after an assistant turn it would continue that
        // message (continue_final_message), which a template renderer cannot express, so that is refused.
        if (lastRole != "user")
            throw new EngineException($"{source}: the prompt's last message has role '{lastRole}'; it must be 'user' " +
                                      "(the completion is the assistant's reply to it)");
        return chat.Render(prompt, addGenerationPrompt: true);
    }

    static string RenderCompletion(IChatRenderer chat, IReadOnlyList<ChatTurn> prompt, string renderedPrompt, IReadOnlyList<ChatTurn> completion, RowSource source, string field)
    {
        string full = chat.Render(prompt.Concat(completion).ToList(), addGenerationPrompt: false);
        if (!full.StartsWith(renderedPrompt, StringComparison.Ordinal))
            throw new EngineException($"{source}: the chat template renders prompt + {field} so that it does not start with the rendered prompt, " +
                                      $"so the {field} cannot be separated from it (prompt: \"{Shorten(renderedPrompt)}\"; prompt + {field}: \"{Shorten(full)}\")");
        return full[renderedPrompt.Length..];
    }

    static string Shorten(string s) => s.Length <= 120 ? s : s[..120] + "…";
}
