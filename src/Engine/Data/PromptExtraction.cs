namespace Engine.Data;

/// <summary>
/// TRL's <c>extract_prompt</c>: for implicit-prompt pairs (<c>{chosen, rejected}</c>), the prompt is the longest
/// common prefix of the two — characters for text, whole messages for conversations.
/// </summary>
public static class PromptExtraction
{
    /// <summary>Splits text pairs. As TRL does, a space just before the first difference goes to the completions.</summary>
    public static (string Prompt, string Chosen, string Rejected) Split(string chosen, string rejected)
    {
        int n = Math.Min(chosen.Length, rejected.Length);
        int idx = 0;
        while (idx < n && chosen[idx] == rejected[idx]) idx++;
        if (idx == n)
        {
            // No differing character: TRL's loop then leaves its index at the last compared position (n − 1), so the
            // shorter completion keeps its last character instead of becoming empty. Kept for identical results.
            idx = Math.Max(0, n - 1);
        }
        // TRL checks chosen[idx − 1] even at idx 0, where Python reads the last character; we only look back from 1.
        else if (idx > 0 && chosen[idx - 1] == ' ') idx--;
        // Never split a surrogate pair (a character outside the BMP) between prompt and completion.
        if (idx > 0 && idx < chosen.Length && char.IsLowSurrogate(chosen[idx]) && char.IsHighSurrogate(chosen[idx - 1])) idx--;
        return (chosen[..idx], chosen[idx..], rejected[idx..]);
    }

    /// <summary>Splits conversations at the first message where they differ (same quirk as the text case when one is a prefix of the other).</summary>
    public static (IReadOnlyList<ChatTurn> Prompt, IReadOnlyList<ChatTurn> Chosen, IReadOnlyList<ChatTurn> Rejected) Split(IReadOnlyList<ChatTurn> chosen, IReadOnlyList<ChatTurn> rejected)
    {
        int n = Math.Min(chosen.Count, rejected.Count);
        int idx = 0;
        while (idx < n && chosen[idx] == rejected[idx]) idx++;
        if (idx == n) idx = Math.Max(0, n - 1);
        return (chosen.Take(idx).ToList(), chosen.Skip(idx).ToList(), rejected.Skip(idx).ToList());
    }
}
