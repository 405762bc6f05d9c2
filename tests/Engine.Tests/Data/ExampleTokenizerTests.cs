using Engine.Data;

namespace Engine.Tests.Data;

public class ExampleTokenizerTests
{
    const int Bos = 1, Eos = 2;
    static readonly RowSource Src = new("mem.jsonl", 1, 1);

    static PreferenceExample Pair(string prompt, string chosen, string rejected) =>
        new(ExampleText.Plain(prompt), ExampleText.Plain(chosen), ExampleText.Plain(rejected), Src);

    static int[] Ids(string s) => CharTokenizer.Ids(s);
    static int[] Cat(params int[][] parts) => parts.SelectMany(p => p).ToArray();

    [Fact]
    public void Text_pair_gets_bos_on_the_prompt_and_eos_on_each_completion()
    {
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings());
        var report = new TruncationReport();
        var t = tok.Tokenize(Pair("Hi", " yes", " no"), report)!;
        Assert.Equal(Cat([Bos], Ids("Hi")), t.Prompt);
        Assert.Equal(Cat(Ids(" yes"), [Eos]), t.Chosen);
        Assert.Equal(Cat(Ids(" no"), [Eos]), t.Rejected);
        Assert.Equal(1, report.Rows);
        Assert.False(report.Any);
    }

    [Fact]
    public void Bos_and_eos_already_in_the_text_are_not_doubled()
    {
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings());
        var t = tok.Tokenize(Pair("<s>Hi", "ok</s>", "no"), new TruncationReport())!;
        Assert.Equal(Cat([Bos], Ids("Hi")), t.Prompt);
        Assert.Equal(Cat(Ids("ok"), [Eos]), t.Chosen);
    }

    [Fact]
    public void No_bos_when_the_tokenizer_adds_none_or_settings_say_so()
    {
        var noBosTokenizer = new ExampleTokenizer(new CharTokenizer(addBos: false));
        Assert.Equal(Ids("Hi"), noBosTokenizer.EncodeSequence("Hi"));
        var noSpecials = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { AddBos = false, AddEos = false });
        Assert.Equal(Ids("Hi"), noSpecials.EncodeSequence("Hi"));
        Assert.Equal(Ids("ok"), noSpecials.EncodeSequence("ok", addEos: true));
        var t = noSpecials.Tokenize(Pair("Hi", " yes", " no"), new TruncationReport())!;
        Assert.Equal(Ids("Hi"), t.Prompt);
        Assert.Equal(Ids(" yes"), t.Chosen);
    }

    [Fact]
    public void Conversations_are_rendered_with_the_chat_template_trl_style()
    {
        var example = new UnpairedExample(
            ExampleText.Conversation([new ChatTurn("system", "Be brief."), new ChatTurn("user", "Hi")]),
            ExampleText.Conversation([new ChatTurn("assistant", "Hello!")]), true, Src);
        var text = ExampleRenderer.Render(example, new ChatMlRenderer());
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", text.Prompt);
        Assert.Equal("Hello!<|im_end|>\n", text.Completion);

        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings(), new ChatMlRenderer());
        var t = tok.Tokenize(example, new TruncationReport())!;
        // Special-token strings from the template become their ids: <|im_start|> = 3, <|im_end|> = 4. Nothing is added:
        // TRL tokenizes chat-template text with apply_chat_template (add_special_tokens=False, so no BOS the template
        // does not write) and adds EOS to non-conversational rows only (DPOTrainer/KTOTrainer._prepare_dataset,
        // add_eos), so the turn ends with the template's <|im_end|>\n and no token after it.
        Assert.Equal(Cat([3], Ids("system\nBe brief."), [4], Ids("\n"), [3], Ids("user\nHi"), [4], Ids("\n"), [3], Ids("assistant\n")), t.Prompt);
        Assert.Equal(Cat(Ids("Hello!"), [4], Ids("\n")), t.Completion);
        Assert.True(t.Desirable);
    }

    [Fact]
    public void A_template_that_does_not_render_the_prompt_as_a_prefix_is_an_error()
    {
        var example = new PreferenceExample(
            ExampleText.Conversation([new ChatTurn("user", "Hi")]),
            ExampleText.Conversation([new ChatTurn("assistant", "a")]),
            ExampleText.Conversation([new ChatTurn("assistant", "b")]), Src);
        var e = Assert.Throws<EngineException>(() => ExampleRenderer.Render(example, new CountingRenderer()));
        Assert.StartsWith("mem.jsonl:1: the chat template renders prompt + chosen so that it does not start with the rendered prompt", e.Message);
    }

    [Fact]
    public void Conversational_rows_need_a_template_and_a_final_user_turn()
    {
        var noTemplate = new UnpairedExample(ExampleText.Conversation([new ChatTurn("user", "Hi")]), ExampleText.Conversation([new ChatTurn("assistant", "a")]), true, Src);
        Assert.Contains("need the model's chat template", Assert.Throws<EngineException>(() => ExampleRenderer.Render(noTemplate, null)).Message);
        var assistantLast = noTemplate with { Prompt = ExampleText.Conversation([new ChatTurn("user", "Hi"), new ChatTurn("assistant", "Well")]) };
        Assert.Contains("last message has role 'assistant'; it must be 'user'",
            Assert.Throws<EngineException>(() => ExampleRenderer.Render(assistantLast, new ChatMlRenderer())).Message);
    }

    [Fact]
    public void Rows_within_max_length_are_not_cut_even_with_a_long_prompt()
    {
        // TRL truncates only when prompt + longest completion exceeds max_length.
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 20, MaxPromptLength = 4 });
        var report = new TruncationReport();
        var t = tok.Tokenize(Pair("abcdefghij", "xy", "z"), report)!;
        Assert.Equal(11, t.Prompt.Length);
        Assert.False(report.Any);
    }

    [Fact]
    public void Keep_end_cuts_the_prompt_start_but_keeps_bos()
    {
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 8, MaxPromptLength = 4, TruncationMode = TruncationMode.KeepEnd });
        var report = new TruncationReport();
        // prompt [BOS abcdefgh] = 9 tokens, chosen "xy"+EOS = 3 → 12 > 8: prompt → BOS + last 3.
        var t = tok.Tokenize(Pair("abcdefgh", "xy", "z"), report)!;
        Assert.Equal(Cat([Bos], Ids("fgh")), t.Prompt);
        Assert.Equal(Cat(Ids("xy"), [Eos]), t.Chosen);
        Assert.Equal(Cat(Ids("z"), [Eos]), t.Rejected);
        Assert.Equal((1, 0, 0), (report.PromptsTruncated, report.CompletionsTruncated, report.RowsDropped));
        Assert.Equal(12, report.LongestSequence);
    }

    [Fact]
    public void A_prompt_longer_than_max_length_is_cut_by_the_mode_and_counted()
    {
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 6, MaxPromptLength = 3 });
        var report = new TruncationReport();
        var t = tok.Tokenize(new UnpairedExample(ExampleText.Plain("abcdefghij"), ExampleText.Plain("xy"), true, Src), report)!;
        Assert.Equal(Cat([Bos], Ids("ij")), t.Prompt);
        Assert.Equal(Cat(Ids("xy"), [Eos]), t.Completion);
        Assert.Equal((1, 1, 0), (report.PromptsOverMaxLength, report.PromptsTruncated, report.RowsDropped));
    }

    [Fact]
    public void Keep_start_keeps_the_prompt_head()
    {
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 8, MaxPromptLength = 4, TruncationMode = TruncationMode.KeepStart });
        var t = tok.Tokenize(Pair("abcdefgh", "xy", "z"), new TruncationReport())!;
        Assert.Equal(Cat([Bos], Ids("abc")), t.Prompt);
    }

    [Fact]
    public void Completions_too_long_after_the_prompt_is_cut_lose_their_end_and_are_counted()
    {
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 8, MaxPromptLength = 3 });
        var report = new TruncationReport();
        // prompt BOS+"pppp" → BOS+"pp" (3); room 5: chosen "abcdefg"+EOS (8) → "abcde", rejected "ab"+EOS fits.
        var t = tok.Tokenize(Pair("pppp", "abcdefg", "ab"), report)!;
        Assert.Equal(Cat([Bos], Ids("pp")), t.Prompt);
        Assert.Equal(Ids("abcde"), t.Chosen);
        Assert.Equal(Cat(Ids("ab"), [Eos]), t.Rejected);
        Assert.Equal((1, 1), (report.PromptsTruncated, report.CompletionsTruncated));
        Assert.True(t.Prompt.Length + t.Chosen.Length <= 8);
    }

    [Fact]
    public void Without_max_prompt_length_the_prompt_gives_way_to_the_longest_completion()
    {
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 10, MaxPromptLength = null });
        var report = new TruncationReport();
        var t = tok.Tokenize(new UnpairedExample(ExampleText.Plain("abcdefghijkl"), ExampleText.Plain("xyz"), false, Src), report)!;
        // completion 4 tokens with EOS → prompt limit 6: BOS + last 5.
        Assert.Equal(Cat([Bos], Ids("hijkl")), t.Prompt);
        Assert.Equal(Cat(Ids("xyz"), [Eos]), t.Completion);
        Assert.Equal(1, report.PromptsTruncated);
    }

    [Fact]
    public void Rows_without_completion_tokens_are_dropped_and_counted()
    {
        var tok = new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { AddEos = false });
        var report = new TruncationReport();
        var rows = tok.TokenizeAll(new[] { Pair("p", "", "b"), Pair("p", "a", "b") }, report);
        Assert.Single(rows);
        Assert.Equal((2, 1), (report.Rows, report.RowsDropped));
        Assert.Equal(Src, report.DroppedSources[0]);
    }

    [Fact]
    public void Impossible_limits_are_rejected()
    {
        Assert.Contains("must be less than max length", Assert.Throws<EngineException>(() =>
            new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 8, MaxPromptLength = 8 })).Message);
        Assert.Throws<EngineException>(() => new ExampleTokenizer(new CharTokenizer(), new TokenizationSettings { MaxLength = 1 }));
    }
}
