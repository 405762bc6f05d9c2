namespace Engine.Data;

/// <summary>
/// Turns a conversation into the model's prompt text (its chat template). The data pipeline depends only on this;
/// the Jinja engine (Engine.Data.ChatTemplates) is adapted to it, and tests use a hand-written template.
/// </summary>
public interface IChatRenderer
{
    /// <param name="addGenerationPrompt">Append the text that opens the assistant's turn (HF's add_generation_prompt).</param>
    string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt);
}

/// <summary>An <see cref="IChatRenderer"/> from a function (e.g. a parsed chat template with its variables bound).</summary>
public sealed class DelegateChatRenderer(Func<IReadOnlyList<ChatTurn>, bool, string> render) : IChatRenderer
{
    public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt) => render(messages, addGenerationPrompt);
}
