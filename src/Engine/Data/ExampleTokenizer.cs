using Engine.Tokenization;

namespace Engine.Data;

/// <summary>
/// A row's token ids before truncation: the prompt its completions share, and each completion in order.
/// </summary>
/// <param name="BoundaryMerged">the join merged tokens across the prompt/completion boundary, so the prompt's last
/// token(s) moved into the completions (see <see cref="ExampleTokenizer"/>)</param>
public sealed record EncodedRow(int[] Prompt, int[][] Completions, bool BoundaryMerged);

/// <summary>
/// Turns examples into token ids as TRL v1.x's DPO, KTO and SFT trainers do (`tokenize_fn`): the prompt is tokenized
/// alone and joined with each completion, and the completion is the joined tokens after the prompt's, so a
/// SentencePiece completion gets no dummy-prefix "▁" of its own. Text rows get BOS (add_bos_token) and EOS;
/// chat-template rows get nothing added (apply_chat_template tokenizes with add_special_tokens=False; TRL's add_eos
/// is for non-conversational rows). Where the join merges tokens across the boundary ("A: " + "It" → ' It'), TRL's
/// DPO/KTO keep the prompt's tokens and lose the merged text; Engine moves the boundary back to where the tokens
/// first differ (over both completions of a pair, which share one prompt), as TRL's ORPO build_tokenized_answer
/// does, and counts the row. Truncation is prompt-first (see <see cref="Fit(int[], int[][], RowSource?, TruncationReport)"/>
/// and docs/trl-parity.md).
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
        var fitted = Fit(Encode(example), example.Source, report);
        return fitted is var (prompt, completions) ? new TokenizedPair(prompt, completions[0], completions[1]) { Source = example.Source } : null;
    }

    public TokenizedUnpaired? Tokenize(UnpairedExample example, TruncationReport report)
    {
        var fitted = Fit(Encode(example), example.Source, report);
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

    /// <summary>Prompt, chosen and rejected ids before truncation.</summary>
    public EncodedRow Encode(PreferenceExample example)
    {
        var text = ExampleRenderer.Render(example, ChatRenderer);
        return Encode(text.Prompt, new[] { text.Chosen, text.Rejected }, example.Chosen.IsConversational);
    }

    /// <summary>Prompt and completion ids before truncation.</summary>
    public EncodedRow Encode(UnpairedExample example)
    {
        var text = ExampleRenderer.Render(example, ChatRenderer);
        return Encode(text.Prompt, new[] { text.Completion }, example.Completion.IsConversational);
    }

    /// <summary>
    /// Tokenizes the prompt alone and prompt + each completion, and splits each joined sequence after the prompt's
    /// tokens (moved back where a merge across the boundary makes them differ).
    /// </summary>
    /// <param name="conversational">text rendered by a chat template: no BOS or EOS is added</param>
    public EncodedRow Encode(string prompt, IReadOnlyList<string> completions, bool conversational)
    {
        var promptIds = EncodeSequence(prompt, addSpecial: !conversational);
        var joined = new int[completions.Count][];
        int boundary = promptIds.Length;
        for (int i = 0; i < completions.Count; i++)
        {
            joined[i] = EncodeSequence(prompt + completions[i], addSpecial: !conversational, addEos: !conversational);
            boundary = Math.Min(boundary, CommonPrefixLength(promptIds, joined[i]));
        }
        return new EncodedRow(promptIds[..boundary], joined.Select(j => j[boundary..]).ToArray(), boundary < promptIds.Length);
    }

    /// <summary>
    /// Ids of one sequence: special-token strings (from a chat template) parsed; with <paramref name="addSpecial"/>,
    /// BOS first when the tokenizer adds it (add_bos_token); with <paramref name="addEos"/>, EOS last. Neither is
    /// doubled when the text already has it.
    /// </summary>
    public int[] EncodeSequence(string text, bool addSpecial = true, bool addEos = false)
    {
        var ids = Tokenizer.EncodeText(text, parseSpecial: true);
        bool bos = addSpecial && Settings.AddBos && Tokenizer.AddBos && Tokenizer.BosId is int b && (ids.Count == 0 || ids[0] != b);
        bool eos = addEos && Settings.AddEos && Tokenizer.EosId is int e && (ids.Count == 0 || ids[^1] != e);
        var result = new int[ids.Count + (bos ? 1 : 0) + (eos ? 1 : 0)];
        if (bos) result[0] = Tokenizer.BosId!.Value;
        for (int i = 0; i < ids.Count; i++) result[i + (bos ? 1 : 0)] = ids[i];
        if (eos) result[^1] = Tokenizer.EosId!.Value;
        return result;
    }

    static int CommonPrefixLength(int[] a, int[] b)
    {
        int n = Math.Min(a.Length, b.Length), i = 0;
        while (i < n && a[i] == b[i]) i++;
        return i;
    }

    /// <summary>Applies the length limits to an encoded row, counting in the report; null when the row is dropped.</summary>
    public (int[] Prompt, int[][] Completions)? Fit(EncodedRow row, RowSource? source, TruncationReport report)
    {
        if (row.BoundaryMerged) report.BoundaryMerges++;
        return Fit(row.Prompt, row.Completions.ToArray(), source, report);
    }

    /// <summary>
    /// Applies max_length / max_prompt_length to a prompt and its completions; null when the row is dropped. Only when
    /// prompt + longest completion exceeds max_length is the prompt cut to max_prompt_length by the truncation mode;
    /// if still too long, the completions are cut at the end to the room left, losing their EOS (they did not end there).
    /// </summary>
    public (int[] Prompt, int[][] Completions)? Fit(int[] prompt, int[][] completions, RowSource? source, TruncationReport report)
    {
        report.Rows++;
        int longest = completions.Max(c => c.Length);
        report.LongestSequence = Math.Max(report.LongestSequence, prompt.Length + longest);
        if (Settings.MaxLength is int maxLength && prompt.Length + longest > maxLength)
        {
            if (prompt.Length >= maxLength) report.PromptsOverMaxLength++;
            // Without max_prompt_length the prompt gives way to the longest completion, keeping at least one token.
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
        // seen a sequence start without it (TRL's KTO before v0.29, _process_tokens, added BOS back after truncating).
        if (limit >= 2 && Tokenizer.BosId is int bos && prompt.Length > 0 && prompt[0] == bos)
            return [bos, .. prompt[^(limit - 1)..]];
        return prompt[^limit..];
    }
}
