using Engine.Tokenization;

namespace Engine.Data;

/// <summary>
/// Turns examples into token ids the way TRL does. The prompt and each completion are rendered (chat template
/// for conversations) and encoded separately, as TRL's DPOTrainer.tokenize_row does, so the prompt's ids are
/// the same in chosen and rejected. BOS/EOS follow KTO's rule: added only when not already there, so a chat
/// template that writes bos_token/eos_token itself does not get them twice.
/// Truncation follows TRL's KTO (_process_tokens; DPO's before v0.12): only when prompt + longest completion
/// exceeds max_length is the prompt cut to max_prompt_length by the truncation mode; if still too long, the
/// completions are cut at the end to the room left (TRL cuts them to max_length − max_prompt_length; we keep
/// the whole remaining room). A cut completion loses its EOS, as TRL's DPO does: it did not end there.
/// </summary>
public sealed class ExampleTokenizer
{
    public TextTokenizer Tokenizer { get; }
    public TokenizationSettings Settings { get; }
    public IChatRenderer? ChatRenderer { get; }

    public ExampleTokenizer(TextTokenizer tokenizer, TokenizationSettings? settings = null, IChatRenderer? chatRenderer = null)
    {
        Tokenizer = tokenizer;
        Settings = settings ?? TokenizationSettings.Default;
        Settings.Validate();
        ChatRenderer = chatRenderer;
    }

    /// <summary>The id written in padding (masked, so any valid id): the tokenizer's pad token, else EOS, else 0.</summary>
    public long PadId => Tokenizer.PadId ?? Tokenizer.EosId ?? 0;

    /// <summary>The pair's ids, or null when it had to be dropped (counted in the report).</summary>
    public TokenizedPair? Tokenize(PreferenceExample example, TruncationReport report)
    {
        var text = ExampleRenderer.Render(example, ChatRenderer);
        var fitted = Fit(EncodePrompt(text.Prompt), new[] { EncodeCompletion(text.Chosen), EncodeCompletion(text.Rejected) }, example.Source, report);
        return fitted is var (prompt, completions) ? new TokenizedPair(prompt, completions[0], completions[1]) { Source = example.Source } : null;
    }

    public TokenizedUnpaired? Tokenize(UnpairedExample example, TruncationReport report)
    {
        var text = ExampleRenderer.Render(example, ChatRenderer);
        var fitted = Fit(EncodePrompt(text.Prompt), new[] { EncodeCompletion(text.Completion) }, example.Source, report);
        return fitted is var (prompt, completions) ? new TokenizedUnpaired(prompt, completions[0], example.Label) { Source = example.Source } : null;
    }

    public List<TokenizedPair> TokenizeAll(IEnumerable<PreferenceExample> examples, TruncationReport report)
    {
        var result = new List<TokenizedPair>();
        foreach (var e in examples) if (Tokenize(e, report) is { } t) result.Add(t);
        return result;
    }

    public List<TokenizedUnpaired> TokenizeAll(IEnumerable<UnpairedExample> examples, TruncationReport report)
    {
        var result = new List<TokenizedUnpaired>();
        foreach (var e in examples) if (Tokenize(e, report) is { } t) result.Add(t);
        return result;
    }

    /// <summary>Prompt ids: special-token strings (from a chat template) parsed, BOS first when the tokenizer adds it.</summary>
    public int[] EncodePrompt(string text)
    {
        var ids = Tokenizer.EncodeText(text, parseSpecial: true);
        bool addBos = Settings.AddBos && Tokenizer.AddBos && Tokenizer.BosId is int bos && (ids.Count == 0 || ids[0] != bos);
        var result = new int[ids.Count + (addBos ? 1 : 0)];
        if (addBos) result[0] = Tokenizer.BosId!.Value;
        for (int i = 0; i < ids.Count; i++) result[i + (addBos ? 1 : 0)] = ids[i];
        return result;
    }

    /// <summary>Completion ids, EOS last.</summary>
    public int[] EncodeCompletion(string text)
    {
        var ids = Tokenizer.EncodeText(text, parseSpecial: true);
        bool addEos = Settings.AddEos && Tokenizer.EosId is int eos && (ids.Count == 0 || ids[^1] != eos);
        var result = new int[ids.Count + (addEos ? 1 : 0)];
        for (int i = 0; i < ids.Count; i++) result[i] = ids[i];
        if (addEos) result[^1] = Tokenizer.EosId!.Value;
        return result;
    }

    /// <summary>Applies max_length / max_prompt_length to a prompt and its completions; null when the row is dropped.</summary>
    public (int[] Prompt, int[][] Completions)? Fit(int[] prompt, int[][] completions, RowSource? source, TruncationReport report)
    {
        report.Rows++;
        int longest = completions.Max(c => c.Length);
        report.LongestSequence = Math.Max(report.LongestSequence, prompt.Length + longest);
        if (Settings.MaxLength is int maxLength && prompt.Length + longest > maxLength)
        {
            if (prompt.Length >= maxLength) report.PromptsOverMaxLength++;
            // Without max_prompt_length the prompt gives way to the longest completion (what keep_end on the
            // whole sequence does), keeping at least one token.
            int promptLimit = Settings.MaxPromptLength ?? Math.Max(1, maxLength - longest);
            if (prompt.Length > promptLimit)
            {
                prompt = TruncatePrompt(prompt, promptLimit);
                report.PromptsTruncated++;
            }
            int room = maxLength - prompt.Length;
            for (int i = 0; i < completions.Length; i++)
            {
                if (completions[i].Length <= room) continue;
                completions[i] = completions[i][..Math.Max(0, room)];
                report.CompletionsTruncated++;
            }
        }
        if (completions.Any(c => c.Length == 0))
        {
            report.Drop(source);
            return null;
        }
        return (prompt, completions);
    }

    int[] TruncatePrompt(int[] prompt, int limit)
    {
        if (Settings.TruncationMode == TruncationMode.KeepStart) return prompt[..limit];
        // keep_end keeps the prompt's last tokens, but a leading BOS stays the first token: the model has never
        // seen a sequence start without it (TRL's KTO adds BOS back after truncating).
        if (limit >= 2 && Tokenizer.BosId is int bos && prompt.Length > 0 && prompt[0] == bos)
            return [bos, .. prompt[^(limit - 1)..]];
        return prompt[^limit..];
    }
}
