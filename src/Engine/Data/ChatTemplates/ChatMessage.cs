namespace Engine.Data.ChatTemplates;

/// <summary>One turn of a conversation as chat templates see it: <c>message['role']</c>, <c>message['content']</c>.</summary>
public sealed record ChatMessage(string Role, string Content);
