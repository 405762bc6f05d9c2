using Engine.Data;

namespace Engine.Tests.Data;

/// <summary>
/// A hand-written ChatML template (what Qwen/Zephyr-style chat_template strings render), standing in for the
/// Jinja engine: &lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n per message, then &lt;|im_start|&gt;assistant\n
/// for the generation prompt.
/// </summary>
public sealed class ChatMlRenderer : IChatRenderer
{
    public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt) =>
        string.Concat(messages.Select(m => $"<|im_start|>{m.Role}\n{m.Content}<|im_end|>\n")) + (addGenerationPrompt ? "<|im_start|>assistant\n" : "");
}

/// <summary>A template whose output depends on the message count, so the prompt is not a prefix of prompt + completion.</summary>
public sealed class CountingRenderer : IChatRenderer
{
    public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt) =>
        $"[{messages.Count} messages]" + string.Concat(messages.Select(m => $"{m.Role}: {m.Content}\n"));
}
