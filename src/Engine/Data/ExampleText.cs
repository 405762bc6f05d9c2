namespace Engine.Data;

/// <summary>
/// The value of a prompt or completion field: plain text, or a list of chat messages that the model's chat
/// template turns into text (TRL's "standard" and "conversational" formats).
/// </summary>
public sealed class ExampleText : IEquatable<ExampleText>
{
    public string? Text { get; }
    public IReadOnlyList<ChatTurn>? Messages { get; }
    public bool IsConversational => Messages is not null;

    ExampleText(string? text, IReadOnlyList<ChatTurn>? messages) { Text = text; Messages = messages; }

    public static ExampleText Plain(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), null);
    public static ExampleText Conversation(IReadOnlyList<ChatTurn> messages) => new(null, messages ?? throw new ArgumentNullException(nameof(messages)));

    /// <summary>Characters of text, or of all message contents (what a user can measure without a tokenizer).</summary>
    public int CharLength => Text?.Length ?? Messages!.Sum(m => m.Content.Length);

    /// <summary>No content: empty or whitespace text, or no message with non-whitespace content.</summary>
    public bool IsBlank => Text is not null ? string.IsNullOrWhiteSpace(Text) : Messages!.All(m => string.IsNullOrWhiteSpace(m.Content));

    public bool Equals(ExampleText? other) =>
        other is not null && Text == other.Text &&
        (Messages is null ? other.Messages is null : other.Messages is not null && Messages.SequenceEqual(other.Messages));

    public override bool Equals(object? obj) => Equals(obj as ExampleText);

    public override int GetHashCode()
    {
        if (Text is not null) return Text.GetHashCode();
        var h = new HashCode();
        foreach (var m in Messages!) h.Add(m);
        return h.ToHashCode();
    }

    public override string ToString() => Text ?? string.Join(" | ", Messages!.Select(m => $"{m.Role}: {m.Content}"));
}
