using System.Text.Json.Nodes;
using Engine.Data;
using Engine.Tests.Infrastructure;
using Engine.Tests.Tokenization;
using Engine.Tokenization;
using Microsoft.ML.Tokenizers;

namespace Engine.Tests.Data;

/// <summary>
/// Prompt + completion are tokenized together, as TRL v1.x does for every maintained trainer (DPOTrainer and
/// KTOTrainer `_prepare_dataset` → `tokenize_fn`, SFTTrainer `tokenize_fn`): prompt_ids = tok(prompt),
/// joined = tok(prompt + completion, with eos_token appended to the text of non-conversational rows), and the
/// completion is joined[len(prompt_ids):]. Conversational rows are tokenized from the chat template's text with
/// add_special_tokens=False (transformers' apply_chat_template), so no BOS or EOS is added to them.
/// Expected ids come from independent tokenizers — Hugging Face's Rust tokenizers (Tokenizers.DotNet) for the
/// tokenizer.json folders, Microsoft.ML.Tokenizers' SentencePiece for llama-spm's tokenizer.model — with that rule
/// applied here; the text avoids runs of one repeated character, where Microsoft.ML.Tokenizers' merge order differs.
/// </summary>
public class JointTokenizationTests
{
    static readonly RowSource Src = new("mem.jsonl", 1, 1);
    const string Prompt = "Question: what colour is the sky?\nAssistant:";
    const string Chosen = " It is blue.", Rejected = " Green, I think.";

    /// <summary>One tokenizer under test and its independent oracle.</summary>
    sealed record Subject(TextTokenizer Engine, Func<string, bool, int[]> Oracle, string EosText, int EosId);

    static readonly Lazy<LlamaTokenizer> MlLlama = new(() =>
    {
        using var stream = File.OpenRead(SharedData.Require("tokenizers/llama-spm/tokenizer.model"));
        return LlamaTokenizer.Create(stream, addBeginOfSentence: false);
    });

    static Subject Load(string name)
    {
        if (name == "llama-spm")
        {
            var engine = TokenizerLoader.Load(SharedData.Require("tokenizers/llama-spm"));
            // HF splits special-token text out before encoding, so "text</s>" is tok(text) + [</s>]; the oracle is
            // given the text without it and the EOS id appended (see Oracle below).
            return new Subject(engine, (text, addSpecial) =>
            {
                var ids = MlLlama.Value.EncodeToIds(text).ToArray();
                return addSpecial ? ids.Prepend(1).ToArray() : ids;
            }, "</s>", 2);
        }
        var oracle = RealTokenizers.Oracle(name);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(RealTokenizers.Folder(name), "tokenizer_config.json")))!;
        string eos = config["eos_token"]!.GetValue<string>();
        int eosId = oracle.Encode(eos, addSpecial: false).Single();
        return new Subject(RealTokenizers.Engine(name), (text, addSpecial) => oracle.Encode(text, addSpecial), eos, eosId);
    }

    /// <summary>tok(text + eos_token) for a text row: HF text with the EOS string; the SentencePiece oracle appends the id.</summary>
    static int[] JoinedText(string name, Subject s, string text) =>
        name == "llama-spm" ? s.Oracle(text, true).Append(s.EosId).ToArray() : s.Oracle(text + s.EosText, true);

    static int[] Suffix(int[] prompt, int[] joined)
    {
        Assert.True(joined.Take(prompt.Length).SequenceEqual(prompt), "the oracle's prompt tokens are a prefix of prompt + completion's (no boundary merge)");
        return joined[prompt.Length..];
    }

    public static TheoryData<string> Names() => new() { "llama-spm", "mistral-v0.1", "llama3", "qwen3" };

    [SkippableTheory]
    [MemberData(nameof(Names))]
    public void Text_pairs_are_the_suffix_of_the_joint_tokenization(string name)
    {
        var s = Load(name);
        var tok = new ExampleTokenizer(s.Engine, new TokenizationSettings { MaxLength = null });
        var report = new TruncationReport();
        var t = tok.Tokenize(new PreferenceExample(ExampleText.Plain(Prompt), ExampleText.Plain(Chosen), ExampleText.Plain(Rejected), Src), report)!;

        var prompt = s.Oracle(Prompt, true);
        Assert.Equal(prompt, t.Prompt);
        Assert.Equal(Suffix(prompt, JoinedText(name, s, Prompt + Chosen)), t.Chosen);
        Assert.Equal(Suffix(prompt, JoinedText(name, s, Prompt + Rejected)), t.Rejected);
        Assert.Equal(s.EosId, t.Chosen[^1]);
        Assert.Equal(0, report.BoundaryMerges);
    }

    [SkippableFact]
    public void A_sentencepiece_completion_gets_no_dummy_prefix_of_its_own()
    {
        // The example: for llama-spm, "…Assistant:" + " It is blue." is ':' '▁It' …, not ':' '▁' '▁It' … as
        // tokenizing the completion on its own (with SentencePiece's dummy prefix) gave.
        var s = Load("llama-spm");
        var tok = new ExampleTokenizer(s.Engine);
        var t = tok.Tokenize(new PreferenceExample(ExampleText.Plain(Prompt), ExampleText.Plain(Chosen), ExampleText.Plain(Rejected), Src), new TruncationReport())!;
        Assert.Equal(":", s.Engine.Tokens[t.Prompt[^1]]);
        Assert.Equal("▁It", s.Engine.Tokens[t.Chosen[0]]);
        Assert.Equal(new[] { "▁", "▁It" }, s.Engine.EncodeText(Chosen).Take(2).Select(i => s.Engine.Tokens[i]));
    }

    /// <summary>
    /// A template of plain lines ("User: …\nAssistant:\n…\n") for the tokenizers without a chat template: the
    /// completion follows a newline, where a separately tokenized "Hello!" would start with SentencePiece's "▁Hello".
    /// </summary>
    sealed class LinesRenderer : IChatRenderer
    {
        public string Render(IReadOnlyList<ChatTurn> messages, bool addGenerationPrompt) =>
            string.Concat(messages.Select(m => m.Role == "user" ? $"User: {m.Content}\n" : $"Assistant:\n{m.Content}\n")) +
            (addGenerationPrompt ? "Assistant:\n" : "");
    }

    /// <summary>What each real chat template renders for the conversation below, written out by hand from the template.</summary>
    static (string Prompt, string Full) ChatText(string name) => name switch
    {
        "qwen3" => ("<|im_start|>user\nWhat colour is the sky?<|im_end|>\n<|im_start|>assistant\n",
                    "<|im_start|>user\nWhat colour is the sky?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello! It is blue.<|im_end|>\n"),
        "llama3" => ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat colour is the sky?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                     "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat colour is the sky?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello! It is blue.<|eot_id|>"),
        _ => ("User: What colour is the sky?\nAssistant:\n", "User: What colour is the sky?\nAssistant:\nHello! It is blue.\n"),
    };

    [SkippableTheory]
    [MemberData(nameof(Names))]
    public void Conversational_rows_are_the_suffix_of_the_rendered_conversation_with_nothing_added(string name)
    {
        var s = Load(name);
        IChatRenderer renderer = name is "qwen3" or "llama3" ? ChatRendering.ForTokenizer(s.Engine, name)! : new LinesRenderer();
        var example = new UnpairedExample(ExampleText.Conversation([new ChatTurn("user", "What colour is the sky?")]),
            ExampleText.Conversation([new ChatTurn("assistant", "Hello! It is blue.")]), true, Src);
        var (promptText, fullText) = ChatText(name);
        var rendered = ExampleRenderer.Render(example, renderer);
        Assert.Equal(promptText, rendered.Prompt);
        Assert.Equal(fullText, rendered.Prompt + rendered.Completion);

        var t = new ExampleTokenizer(s.Engine, new TokenizationSettings { MaxLength = null }, renderer).Tokenize(example, new TruncationReport())!;
        var prompt = s.Oracle(promptText, false);
        Assert.Equal(prompt, t.Prompt);
        Assert.Equal(Suffix(prompt, s.Oracle(fullText, false)), t.Completion);
        // No EOS after the template's end of turn (the old code appended one to every completion).
        Assert.Equal(s.Oracle(fullText, false)[^1], t.Completion[^1]);
        if (name is "llama-spm" or "mistral-v0.1")
            Assert.Equal("Hello", s.Engine.Tokens[t.Completion[0]]); // after the newline: 'Hello', not '▁Hello'
    }

    [SkippableFact]
    public void A_merge_across_the_boundary_moves_the_boundary_back_and_keeps_the_exact_tokenization()
    {
        // Byte-level BPE merges the prompt's trailing space into the completion's first word: "Answer: " is
        // 'Answer' ':' ' ', but "Answer: It …" is 'Answer' ':' ' It' …. TRL's DPO/KTO keep the prompt's three tokens
        // and take joined[3:], which loses "It"; Engine splits where the two first differ (TRL's ORPO/CPO
        // build_tokenized_answer does the same), the smaller point over chosen and rejected so both share the prompt.
        var s = Load("qwen3");
        const string prompt = "Answer: ", chosen = "It is blue.", rejected = "No.";
        var report = new TruncationReport();
        var t = new ExampleTokenizer(s.Engine).Tokenize(
            new PreferenceExample(ExampleText.Plain(prompt), ExampleText.Plain(chosen), ExampleText.Plain(rejected), Src), report)!;

        var p = s.Oracle(prompt, true);
        var jc = s.Oracle(prompt + chosen + s.EosText, true);
        var jr = s.Oracle(prompt + rejected + s.EosText, true);
        int Common(int[] a, int[] b) => a.Zip(b).TakeWhile(x => x.First == x.Second).Count();
        int k = Math.Min(Common(p, jc), Common(p, jr));
        Assert.True(k < p.Length, "the oracle confirms a merge across the boundary");
        Assert.Equal(p[..k], t.Prompt);
        Assert.Equal(jc[k..], t.Chosen);
        Assert.Equal(jr[k..], t.Rejected);
        Assert.Equal(jc, t.Prompt.Concat(t.Chosen));
        Assert.Equal(1, report.BoundaryMerges);
        Assert.True(report.Any);
        Assert.Contains("1 row merged tokens across the prompt/completion boundary", report.ToString());
    }
}
