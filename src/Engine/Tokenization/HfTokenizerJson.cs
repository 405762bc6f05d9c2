using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a BPE model, parsed into the parts of its pipeline: added tokens (with
/// their flags), normalizer, pre-tokenizer, BPE model, the special tokens the post-processor adds, and decoder.
/// Other model types (WordPiece, Unigram, WordLevel) are recognised and reported. The large vocabulary and merge
/// lists are read straight from a JsonDocument (Gemma 3's file is 33 MB).
/// </summary>
internal sealed class HfTokenizerJson
{
    public const string FileName = "tokenizer.json";

    public required string Source { get; init; }
    public byte[]? FileBytes { get; init; }
    /// <summary>Why Engine cannot run this tokenizer.json, or null when it can.</summary>
    public string? Unsupported { get; init; }
    public Dictionary<string, int> Vocab { get; init; } = new(StringComparer.Ordinal);
    public List<(string A, string B)> Merges { get; init; } = new();
    public bool ByteFallback { get; init; }
    public bool FuseUnknown { get; init; }
    public bool IgnoreMerges { get; init; }
    public string? UnkToken { get; init; }
    public List<AddedTokenSpec> Added { get; init; } = new();
    public HfNormalizer Normalizer { get; init; } = HfNormalizer.None;
    public HfPreTokenizer PreTokenizer { get; init; } = HfPreTokenizer.None;
    public HfDecoder Decoder { get; init; } = new(null);
    /// <summary>Texts of unused ids (GGUF vocabularies); tokenizer.json has none and gets "[PADn]" fillers.</summary>
    public Dictionary<int, string> Unused { get; init; } = new();
    /// <summary>Added tokens keep the ids given (GGUF vocabularies), instead of the ids the reference assigns on load.</summary>
    public bool AddedIdsAreFixed { get; init; }
    public string? TemplateBos { get; init; }
    public string? TemplateEos { get; init; }

    public static HfTokenizerJson Load(string path)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (info.Length > 1L << 30) throw new EngineException($"{path}: {info.Length} bytes is too large for a tokenizer.json");
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new EngineException($"{path}: cannot read: {e.Message}", e);
        }
        try { _ = new UTF8Encoding(false, true).GetCharCount(bytes); }
        catch (DecoderFallbackException) { throw new EngineException($"{path}: not valid UTF-8 text"); }
        using var doc = JsonFile.ParseDocument(bytes, path);
        return Parse(doc.RootElement, path, bytes);
    }

    public static HfTokenizerJson Parse(JsonElement root, string source, byte[]? bytes)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new EngineException($"{source}: expected a JSON object at the top level");
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw new EngineException($"{source}: no \"model\" object (not a Hugging Face tokenizer.json?)");
        string modelType = StringOrNull(model, "type", $"{source}: model") ?? (model.TryGetProperty("merges", out _) ? "BPE" : "unknown");
        if (modelType != "BPE")
            return new HfTokenizerJson { Source = source, FileBytes = bytes, Unsupported = $"model type \"{modelType}\" is not supported (only BPE)" };
        if (model.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
            throw new EngineException($"{source}: model.dropout {dropout.GetDouble()} is not supported (BPE dropout is for training only)");
        foreach (var key in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (StringOrNull(model, key, $"{source}: model") is { Length: > 0 } value)
                throw new EngineException($"{source}: model.{key} \"{value}\" is not supported");

        var vocab = ParseVocab(model, source);
        JsonNode? Node(string key) => root.TryGetProperty(key, out var e) && e.ValueKind != JsonValueKind.Null ? JsonNode.Parse(e.GetRawText()) : null;
        var post = Node("post_processor");
        var (bos, eos) = TemplateSpecialTokens(post, source);
        return new HfTokenizerJson
        {
            Source = source,
            FileBytes = bytes,
            Vocab = vocab,
            Merges = ParseMerges(model, source),
            ByteFallback = BoolOrNull(model, "byte_fallback", $"{source}: model") ?? false,
            FuseUnknown = BoolOrNull(model, "fuse_unk", $"{source}: model") ?? false,
            IgnoreMerges = BoolOrNull(model, "ignore_merges", $"{source}: model") ?? false,
            UnkToken = StringOrNull(model, "unk_token", $"{source}: model"),
            Added = ParseAddedTokens(Node("added_tokens"), source),
            Normalizer = HfNormalizer.FromJson(Node("normalizer"), source),
            PreTokenizer = HfPreTokenizer.FromJson(Node("pre_tokenizer"), source),
            Decoder = HfDecoder.FromJson(Node("decoder"), source),
            TemplateBos = bos,
            TemplateEos = eos,
        };
    }

    static string? StringOrNull(JsonElement obj, string key, string source)
    {
        if (!obj.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new EngineException($"{source}: \"{key}\" must be a string");
    }

    static bool? BoolOrNull(JsonElement obj, string key, string source)
    {
        if (!obj.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new EngineException($"{source}: \"{key}\" must be true or false"),
        };
    }

    static Dictionary<string, int> ParseVocab(JsonElement model, string source)
    {
        if (!model.TryGetProperty("vocab", out var obj) || obj.ValueKind != JsonValueKind.Object)
            throw new EngineException($"{source}: model.vocab must be an object mapping tokens to ids");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var seen = new HashSet<int>();
        foreach (var p in obj.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
                throw new EngineException($"{source}: model.vocab[\"{p.Name}\"] must be a non-negative integer id");
            if (!seen.Add(id)) throw new EngineException($"{source}: model.vocab gives id {id} to more than one token (\"{p.Name}\" is one)");
            if (p.Name.Length == 0) throw new EngineException($"{source}: model.vocab has an empty token (id {id})");
            vocab[p.Name] = id;
        }
        return vocab;
    }

    static List<(string, string)> ParseMerges(JsonElement model, string source)
    {
        var merges = new List<(string, string)>();
        if (!model.TryGetProperty("merges", out var list) || list.ValueKind == JsonValueKind.Null) return merges;
        if (list.ValueKind != JsonValueKind.Array) throw new EngineException($"{source}: model.merges must be a list");
        int i = 0;
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.String)
            {
                string s = item.GetString()!;
                int space = s.IndexOf(' ');
                if (space <= 0 || space == s.Length - 1 || s.IndexOf(' ', space + 1) >= 0)
                    throw new EngineException($"{source}: model.merges[{i}] \"{s}\" is not two tokens separated by one space");
                merges.Add((s[..space], s[(space + 1)..]));
            }
            else if (item.ValueKind == JsonValueKind.Array && item.GetArrayLength() == 2
                     && item[0].ValueKind == JsonValueKind.String && item[1].ValueKind == JsonValueKind.String
                     && item[0].GetString() is { Length: > 0 } a && item[1].GetString() is { Length: > 0 } b)
                merges.Add((a, b));
            else throw new EngineException($"{source}: model.merges[{i}] must be \"a b\" or [\"a\", \"b\"]");
            i++;
        }
        return merges;
    }

    static List<AddedTokenSpec> ParseAddedTokens(JsonNode? node, string source)
    {
        var result = new List<AddedTokenSpec>();
        if (node is null) return result;
        if (node is not JsonArray list) throw new EngineException($"{source}: added_tokens must be a list");
        for (int i = 0; i < list.Count; i++)
        {
            string where = $"{source}: added_tokens[{i}]";
            if (list[i] is not JsonObject t || t["id"] is not JsonValue idValue || !idValue.TryGetValue(out int id) || id < 0
                || JsonFile.OptionalString(t, "content", where) is not { Length: > 0 } content)
                throw new EngineException($"{where} must have a non-negative \"id\" and a non-empty \"content\"");
            bool special = JsonFile.OptionalBool(t, "special", where) ?? false;
            result.Add(new AddedTokenSpec(id, content, special,
                SingleWord: JsonFile.OptionalBool(t, "single_word", where) ?? false,
                LStrip: JsonFile.OptionalBool(t, "lstrip", where) ?? false,
                RStrip: JsonFile.OptionalBool(t, "rstrip", where) ?? false,
                Normalized: JsonFile.OptionalBool(t, "normalized", where) ?? !special));
        }
        return result;
    }

    /// <summary>The special tokens a TemplateProcessing post-processor puts before and after a single sequence.</summary>
    static (string? Bos, string? Eos) TemplateSpecialTokens(JsonNode? node, string source)
    {
        if (node is not JsonObject obj) return (null, null);
        string? type = JsonFile.OptionalString(obj, "type", source);
        switch (type)
        {
            case "Sequence":
                string? bos = null, eos = null;
                if (obj["processors"] is JsonArray processors)
                    foreach (var p in processors)
                    {
                        var (b, e) = TemplateSpecialTokens(p, source);
                        bos ??= b;
                        eos ??= e;
                    }
                return (bos, eos);
            case "ByteLevel" or null:
                return (null, null);
            case "TemplateProcessing":
                break;
            default:
                throw new EngineException($"{source}: post_processor \"{type}\" is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
        }
        if (obj["single"] is not JsonArray single) throw new EngineException($"{source}: post_processor TemplateProcessing needs a \"single\" list");
        var before = new List<string>();
        var after = new List<string>();
        bool seenSequence = false;
        foreach (var item in single)
        {
            if (item?["Sequence"] is not null) { seenSequence = true; continue; }
            if (item?["SpecialToken"]?["id"] is JsonValue v && v.TryGetValue(out string? name))
            {
                // The special_tokens table may map the name to other ids; Engine models one BOS and one EOS id.
                if (obj["special_tokens"]?[name]?["tokens"] is JsonArray tokens && tokens.Count != 1)
                    throw new EngineException($"{source}: post_processor special token \"{name}\" stands for {tokens.Count} tokens; only single tokens are supported");
                if (obj["special_tokens"]?[name]?["tokens"] is JsonArray { Count: 1 } one && one[0] is JsonValue t && t.TryGetValue(out string? token))
                    name = token;
                (seenSequence ? after : before).Add(name);
            }
        }
        if (before.Count > 1 || after.Count > 1)
            throw new EngineException($"{source}: post_processor adds {before.Count} tokens before and {after.Count} after the text; Engine supports at most one BOS and one EOS");
        return (before.FirstOrDefault(), after.FirstOrDefault());
    }

    /// <summary>Writes a tokenizer.json that Hugging Face tokenizers (and this class) can load.</summary>
    internal static string Serialize(IReadOnlyList<string> tokens, IReadOnlyList<TokenType> types, IReadOnlyList<AddedTokenSpec> added,
        BpeModel model, HfNormalizer normalizer, HfPreTokenizer preTokenizer, HfDecoder decoder, int? bosId, int? eosId, bool addBos, bool addEos)
    {
        var addedJson = new JsonArray();
        foreach (var a in added.OrderBy(a => a.Id))
            addedJson.Add(new JsonObject
            {
                ["id"] = a.Id, ["content"] = a.Content, ["single_word"] = a.SingleWord, ["lstrip"] = a.LStrip, ["rstrip"] = a.RStrip,
                ["normalized"] = a.Normalized, ["special"] = a.Special,
            });
        // The reference numbers added tokens that the vocabulary lacks after it, so the written vocabulary must make
        // every id come out the same: unused ids get their filler text, and out-of-place added tokens an entry.
        var ids = new SortedDictionary<int, string>();
        foreach (var (token, id) in model.Vocab) ids[id] = token;
        for (int id = 0; id < tokens.Count; id++) if (types[id] == TokenType.Unused && !ids.ContainsKey(id)) ids[id] = tokens[id];
        int next = ids.Count;
        foreach (var a in added.OrderBy(a => a.Id))
        {
            if (ids.TryGetValue(a.Id, out var t) && t == a.Content) continue;
            if (a.Id == next) next++;
            else ids[a.Id] = a.Content;
        }
        var vocab = new JsonObject();
        var written = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (id, token) in ids) if (written.Add(token)) vocab[token] = id;
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = addedJson,
            ["normalizer"] = normalizer.ToJson(),
            ["pre_tokenizer"] = preTokenizer.ToJson(),
            ["post_processor"] = PostProcessor(tokens, bosId, eosId, addBos, addEos),
            ["decoder"] = decoder.ToJson(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = model.UnkToken, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = model.FuseUnknown, ["byte_fallback"] = model.ByteFallback,
                ["ignore_merges"] = model.IgnoreMerges,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(model.MergePairs.Select(m => (JsonNode)new JsonArray(m.A, m.B)).ToArray()),
            },
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    static JsonNode? PostProcessor(IReadOnlyList<string> tokens, int? bosId, int? eosId, bool addBos, bool addEos)
    {
        if (!(addBos && bosId is not null) && !(addEos && eosId is not null)) return null;
        var specials = new JsonObject();
        JsonArray Template(params string[] sequences)
        {
            var items = new JsonArray();
            foreach (var seq in sequences)
            {
                if (addBos && bosId is int b) items.Add(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = tokens[b], ["type_id"] = 0 } });
                items.Add(new JsonObject { ["Sequence"] = new JsonObject { ["id"] = seq, ["type_id"] = seq == "A" ? 0 : 1 } });
                if (addEos && eosId is int e) items.Add(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = tokens[e], ["type_id"] = 0 } });
            }
            return items;
        }
        foreach (var id in new[] { addBos ? bosId : null, addEos ? eosId : null })
            if (id is int i && !specials.ContainsKey(tokens[i]))
                specials[tokens[i]] = new JsonObject { ["id"] = tokens[i], ["ids"] = new JsonArray(i), ["tokens"] = new JsonArray(tokens[i]) };
        return new JsonObject { ["type"] = "TemplateProcessing", ["single"] = Template("A"), ["pair"] = Template("A", "B"), ["special_tokens"] = specials };
    }
}
