namespace Engine.Tests.Tokenization;

/// <summary>Texts that exercise the parts of a tokenizer where implementations tend to differ.</summary>
public static class TokenizerCorpus
{
    public static readonly string[] Texts =
    {
        // empty, whitespace only, leading/trailing and runs of spaces, tabs and newlines
        "", " ", "  ", "\n", "\t", " \n \n\n \t \t\t \t\n  \n   \n    \n     \n", "Hello world", " Hello world", "  Hello", "Hello  ",
        "a  b   c    d", "\t\ttabs\tand\nnewlines\n\n\n", "\r\n windows \r\n line\rends", "    \n\n    \n", "x" + new string('\n', 40) + "y",
        "y" + new string(' ', 40) + "z", new string('\t', 35), "end.\n\n\nNew paragraph.", "\u00a0nbsp\u3000ideographic\u2009thin\u200bzw",
        // digits (Llama 3 groups them by three, Qwen splits each)
        "1", "12", "123", "1234", "12345 678 9 1234567890", "3.14159 and 1,000,000.00", "3 33 333 3333 33333 333333 3333333", "v1.2.3-rc4", "٣٤٥ ١٢",
        // contractions, case
        "I'm you're they'll we've she'd it's don't", "I'M YOU'RE THEY'LL WE'VE SHE'D IT'S DON'T", "'s 't 're 've 'm 'll 'd", "We'Ve a'lL 'RE",
        "rock 'n' roll", "Hello, World! HOW are YOU?",
        // CJK, other scripts, mixed
        "日本語のテキスト、中文文本。한국어 텍스트", "我想在apple工作1314151天～", "mixed العربية עברית ไทย Ελληνικά русский हिन्दी ქართული",
        "កាន់តែពិសេសអាច", "нещо на Български", "Tiếng Việt có dấu", "ﾊﾝｶｸ ｶﾀｶﾅ and ＦＵＬＬＷＩＤＴＨ",
        // characters outside the basic plane: emoji (with joiners and modifiers), CJK extension B, math letters
        "emoji 😀🎉👩‍👩‍👧 🦙🦙 👍🏽 🇯🇵", "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅", "𠀀𠀁𠂢 CJK Ext B", "𝐀𝐁𝐂 𝑥² math 𝟙𝟚",
        "a😀b😀c", "😀😀😀😀😀😀", "\U0001F600 \U0010FFFD \U000E0041",
        // combining marks and normalization
        "naïve café résumé", "e\u0301 a\u0308 n\u0303", "ﬁ ﬂ ligatures ⅷ ½", "Å Å Å", "한국어 vs 한국어",
        // code
        "def f(x):\n    return x ** 2  # comment\n", "if (a != b) { return a[i] + b->c; }\n\tfor (;;) {}",
        "#include <stdio.h>\nint main() { printf(\"%d\\n\", 42); }", "SELECT * FROM t WHERE id = 1;", "<div class=\"x\">hi</div>",
        "x => x.Select(y => y * 2).ToList();", "```python\nprint('hi')\n```", "a_b_c__d CamelCaseWord snake_case", "http://example.com/a?b=c&d=e#f",
        // punctuation runs
        "!!!!!!!???......------=======", "''''''```````\"\"\"\"", "...", "?!", "(((nested)))", "@user #tag $100 %50 ^caret &amp; *star*",
        // special-token strings inside text
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
        "<s>[INST] hi [/INST]</s>", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
        "text <s> inside </s> text", "<b>bold</b> <i>it</i> <unused0> <mask>", "<bos><eos><pad><unk>", "<|endoftext|>after",
        "< s>", "<|im_start", "im_start|>", "<think>\nreasoning\n</think>\n\nanswer", "<|reserved_special_token_5|>",
        " <s>hi<|im_start|>x<start_of_turn>  \n\n\ty", "\n<start_of_turn>", "<start_of_turn><start_of_turn>",
        // SentencePiece specifics
        "▁▁literal▁", "▁", "<0x41> is not a byte", "[PAD1]", " ▁ ▁",
        // a longer paragraph
        "The quick brown fox jumps over the lazy dog. " + string.Concat(Enumerable.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 8)),
    };

    /// <summary>Fragments random test strings are made of: pieces of the corpus' categories, so that joins between them vary.</summary>
    public static readonly string[] Fragments =
    {
        " ", "  ", "\n", "\n\n", "\t", "\r\n", "a", "the", "The", " the", "Hello", "world", "'s", "'ll", "don't", "I'M",
        "0", "7", "12", "345", "2024", ".", ",", "!", "?", "...", "-", "_", "(", ")", "{", "}", "<", ">", "/", "\\", "\"", "'", "`", "#",
        "日本", "語", "中文", "한", "ไทย", "ру", "ع", "é", "e\u0301", "ß", "ﬁ", "😀", "👩‍👩‍👧", "🏽", "𠀀", "𝐀", "\u00a0", "\u3000", "\u200b",
        "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>", "<s>", "</s>", "<bos>", "<b>", "<|begin_of_text|>", "<|eot_id|>",
        "▁", "<0x0A>", "def", "return", "    ", "=>", "==", "x", "Z",
    };
}
