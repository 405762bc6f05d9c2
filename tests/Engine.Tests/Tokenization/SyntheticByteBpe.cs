using System.Text;
using System.Text.Json.Nodes;

namespace Engine.Tests.Tokenization;

/// <summary>
/// A small byte-level BPE tokenizer.json written by hand for tests: ids 0–255 are the 256 bytes (so unmerged
/// text encodes to its UTF-8 bytes), then a few merged tokens, then added tokens.
/// </summary>
public static class SyntheticByteBpe
{
    /// <summary>GPT-2's bytes_to_unicode, written out here independently of the code under test.</summary>
    public static readonly char[] ByteChar = BuildByteChars();

    static char[] BuildByteChars()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToHashSet();
        var table = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++) table[b] = printable.Contains(b) ? (char)b : (char)(256 + n++);
        return table;
    }

    public static string Spell(string text) => new(Encoding.UTF8.GetBytes(text).Select(b => ByteChar[b]).ToArray());

    /// <summary>Merges in rank order. "hello" is built right to left ("l l" first); "b c" outranks "a b".</summary>
    public static readonly (string A, string B)[] MergeList =
    {
        ("l", "l"), ("e", "ll"), ("h", "ell"), ("hell", "o"), ("Ġ", "hello"),
        ("Ġ", "t"), ("h", "e"), ("Ġt", "he"),
        ("b", "c"), ("a", "b"),
        ("1", "2"), ("12", "3"),
        (Spell("日")[..2], Spell("日")[2..]),
        (Spell("日")[..1], Spell("日")[1..2]),
    };

    public const int FirstMerged = 256;
    /// <summary>A token no merge can build: only ignore_merges can produce it.</summary>
    public static readonly string Unreachable = Spell(" xyz");

    public static int MergedId(string spelled) => FirstMerged + MergedTokens.IndexOf(spelled);

    public static List<string> MergedTokens => MergeList.Select(m => m.A + m.B).Append(Unreachable).ToList();

    public static readonly (int Id, string Content, bool Special)[] Added =
    {
        (300, "<|begin_of_text|>", true),
        (301, "<|eot_id|>", true),
        (302, "<|user|>", false),
    };

    public static string Json(bool ignoreMerges = false, bool mergesAsPairs = false, JsonNode? preTokenizer = null,
        JsonNode? normalizer = null, bool bosTemplate = true, string pattern = Engine.Tokenization.PreTokenizerPatterns.Llama3)
    {
        var vocab = new JsonObject();
        for (int b = 0; b < 256; b++) vocab[ByteChar[b].ToString()] = b;
        var merged = MergedTokens;
        for (int i = 0; i < merged.Count; i++) vocab[merged[i]] = FirstMerged + i;
        // Fillers up to the added tokens: Hugging Face numbers added tokens after the vocabulary, so ids must be dense.
        for (int id = FirstMerged + merged.Count; id < Added[0].Id; id++) vocab[$"<filler{id}>"] = id;
        var merges = new JsonArray(MergeList.Select(m => mergesAsPairs ? (JsonNode)new JsonArray(m.A, m.B) : JsonValue.Create($"{m.A} {m.B}")).ToArray());
        var added = new JsonArray(Added.Select(a => (JsonNode)new JsonObject
        {
            ["id"] = a.Id, ["content"] = a.Content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = a.Special,
        }).ToArray());
        preTokenizer ??= new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
        };
        JsonNode postProcessor = bosTemplate
            ? new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(
                    new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<|begin_of_text|>", ["type_id"] = 0 } },
                    new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
            }
            : new JsonObject { ["type"] = "ByteLevel" };
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = added,
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = preTokenizer,
            ["post_processor"] = postProcessor,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false,
                ["ignore_merges"] = ignoreMerges, ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        return root.ToJsonString();
    }

    public static string WriteFolder(string dir, string json, string? config = null)
    {
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json);
        if (config is not null) File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config);
        return dir;
    }
}
