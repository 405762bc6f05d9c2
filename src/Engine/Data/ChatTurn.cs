namespace Engine.Data;

/// <summary>
/// One message of a conversational dataset row (<c>{"role": ..., "content": ...}</c>). Kept separate from the
/// chat-template renderer's own message type so the data pipeline depends only on <see cref="IChatRenderer"/>.
/// </summary>
public sealed record ChatTurn(string Role, string Content);
