namespace Engine.Data.ChatTemplates;
public sealed record ChatMessage(string Role, string Content);
public sealed class ChatTemplate { public static ChatTemplate Parse(string s, string o) => new(); public string Render(IReadOnlyList<ChatMessage> m, bool a, IReadOnlyDictionary<string, object?> v) => ""; }
