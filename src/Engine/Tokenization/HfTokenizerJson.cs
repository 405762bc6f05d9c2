using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Tokenization;

/// <summary>
/// The parts of a Hugging Face <c>tokenizer.json</c> that a byte-level BPE tokenizer needs: model.vocab,
/// model.merges ("a b" strings or [a, b] pairs), added_tokens, the normalizer (Unicode forms only), the
/// pre-tokenizer, ignore_merges, and the BOS/EOS that a TemplateProcessing post-processor adds.
/// Other tokenizer.json kinds (WordPiece, Unigram, SentencePiece-style BPE) are recognised and reported.
/// </summary>
internal sealed class HfTokenizerJson
{
    public const string FileName = "tokenizer.json";

    public required string Source { get; init; }
    public byte[]? FileBytes { get; init; }
    public bool IsByteLevelBpe => WhyNotByteLevelBpe is null;
    public string? WhyNotByteLevelBpe { get; init; }
    public Dictionary<string, int> Vocab { get; init; } = new(StringComparer.Ordinal);
    public List<string> Merges { get; init; } = new();
    public List<AddedTokenInfo> Added { get; init; } = new();
    public BpePreTokenizer PreTokenizer { get; init; } = new(Array.Empty<BpePreTokenizer.Step>());
    public NormalizationForm[] Normalizers { get; init; } = Array.Empty<NormalizationForm>();
    public bool IgnoreMerges { get; init; }
    /// <summary>Texts of unused ids (GGUF vocabularies); tokenizer.json has none and gets "[PADn]" fillers.</summary>
    public Dictionary<int, string> Unused { get; init; } = new();
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
        string text;
        try { text = new UTF8Encoding(false, true).GetString(bytes); }
        catch (DecoderFallbackException) { throw new EngineException($"{path}: not valid UTF-8 text"); }
        return Parse(JsonFile.ParseObject(text, path), path, bytes);
    }

    public static HfTokenizerJson Parse(JsonObject root, string source, byte[]? bytes)
    {
        if (root["model"] is not JsonObject model) throw new EngineException($"{source}: no \"model\" object (not a Hugging Face tokenizer.json?)");
        string modelType = JsonFile.OptionalString(model, "type", $"{source}: model") ?? (model["merges"] is not null ? "BPE" : "unknown");
        var pre = BpePreTokenizerOrNull(root["pre_tokenizer"], source, out string? preProblem);
        string? why = modelType != "BPE" ? $"model type \"{modelType}\" is not BPE"
            : JsonFile.OptionalBool(model, "byte_fallback", source) == true ? "it is a SentencePiece-style BPE (byte_fallback)"
            : pre is null ? preProblem
            : !pre.HasByteLevel && !IsByteLevelDecoder(root["decoder"]) ? "it has no ByteLevel pre-tokenizer or decoder (not a byte-level BPE)"
            : null;
        if (why is not null) return new HfTokenizerJson { Source = source, FileBytes = bytes, WhyNotByteLevelBpe = why };

        foreach (var key in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (JsonFile.OptionalString(model, key, $"{source}: model") is { Length: > 0 } value)
                throw new EngineException($"{source}: model.{key} \"{value}\" is not supported");

        var vocab = ParseVocab(model["vocab"], source);
        var (bos, eos) = TemplateSpecialTokens(root["post_processor"], source);
        return new HfTokenizerJson
        {
            Source = source,
            FileBytes = bytes,
            Vocab = vocab,
            Merges = ParseMerges(model["merges"], vocab, source),
            Added = ParseAddedTokens(root["added_tokens"], source),
            PreTokenizer = pre!,
            Normalizers = ParseNormalizers(root["normalizer"], source),
            IgnoreMerges = JsonFile.OptionalBool(model, "ignore_merges", $"{source}: model") ?? false,
            TemplateBos = bos,
            TemplateEos = eos,
        };
    }

    static BpePreTokenizer? BpePreTokenizerOrNull(JsonNode? node, string source, out string? problem)
    {
        problem = null;
        try { return BpePreTokenizer.FromJson(node, source); }
        catch (EngineException e) when (!IsByteLevelAnywhere(node))
        {
            // A Metaspace/WordPiece pre-tokenizer just means "not byte-level"; report that instead of the detail.
            problem = $"it is not a byte-level BPE ({e.Message.Replace(source + ": ", "")})";
            return null;
        }
    }

    static bool IsByteLevelAnywhere(JsonNode? node) => node?.ToJsonString().Contains("\"ByteLevel\"", StringComparison.Ordinal) == true;

    static bool IsByteLevelDecoder(JsonNode? node) => IsByteLevelAnywhere(node);

    static Dictionary<string, int> ParseVocab(JsonNode? node, string source)
    {
        if (node is not JsonObject obj) throw new EngineException($"{source}: model.vocab must be an object mapping tokens to ids");
        var vocab = new Dictionary<string, int>(obj.Count, StringComparer.Ordinal);
        var seen = new HashSet<int>();
        foreach (var (token, value) in obj)
        {
            if (value is not JsonValue v || !v.TryGetValue(out int id) || id < 0)
                throw new EngineException($"{source}: model.vocab[\"{token}\"] must be a non-negative integer id");
            if (!seen.Add(id)) throw new EngineException($"{source}: model.vocab gives id {id} to more than one token (\"{token}\" is one)");
            if (token.Length == 0) throw new EngineException($"{source}: model.vocab has an empty token (id {id})");
            vocab[token] = id;
        }
        return vocab;
    }

    static List<string> ParseMerges(JsonNode? node, Dictionary<string, int> vocab, string source)
    {
        if (node is null) return new List<string>();
        if (node is not JsonArray list) throw new EngineException($"{source}: model.merges must be a list");
        var merges = new List<string>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            string left, right;
            switch (list[i])
            {
                case JsonValue v when v.TryGetValue(out string? s):
                    var parts = s.Split(' ');
                    if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
                        throw new EngineException($"{source}: model.merges[{i}] \"{s}\" is not two tokens separated by one space");
                    (left, right) = (parts[0], parts[1]);
                    break;
                case JsonArray pair when pair.Count == 2 && pair[0] is JsonValue a && a.TryGetValue(out string? l) && pair[1] is JsonValue b && b.TryGetValue(out string? r):
                    if (l.Contains(' ') || r.Contains(' '))
                        throw new EngineException($"{source}: model.merges[{i}] has a token with a space, which byte-level BPE never has");
                    (left, right) = (l, r);
                    break;
                default:
                    throw new EngineException($"{source}: model.merges[{i}] must be \"a b\" or [\"a\", \"b\"]");
            }
            foreach (var t in new[] { left, right, left + right })
                if (!vocab.ContainsKey(t)) throw new EngineException($"{source}: model.merges[{i}] (\"{left} {right}\") uses \"{t}\", which is not in model.vocab");
            merges.Add(left + " " + right);
        }
        return merges;
    }

    static List<AddedTokenInfo> ParseAddedTokens(JsonNode? node, string source)
    {
        var result = new List<AddedTokenInfo>();
        if (node is null) return result;
        if (node is not JsonArray list) throw new EngineException($"{source}: added_tokens must be a list");
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is not JsonObject t || t["id"] is not JsonValue idValue || !idValue.TryGetValue(out int id) || id < 0
                || JsonFile.OptionalString(t, "content", source) is not { Length: > 0 } content)
                throw new EngineException($"{source}: added_tokens[{i}] must have a non-negative \"id\" and a non-empty \"content\"");
            result.Add(new AddedTokenInfo(id, content, JsonFile.OptionalBool(t, "special", $"{source}: added_tokens[{i}]") ?? false));
        }
        return result;
    }

    static NormalizationForm[] ParseNormalizers(JsonNode? node, string source)
    {
        var forms = new List<NormalizationForm>();
        void Add(JsonNode? n)
        {
            if (n is null) return;
            string type = n is JsonObject o ? JsonFile.OptionalString(o, "type", source) ?? "" : "";
            switch (type)
            {
                case "Sequence":
                    if (n["normalizers"] is not JsonArray list) throw new EngineException($"{source}: normalizer Sequence without a \"normalizers\" list");
                    foreach (var item in list) Add(item);
                    break;
                case "NFC": forms.Add(NormalizationForm.FormC); break;
                case "NFD": forms.Add(NormalizationForm.FormD); break;
                case "NFKC": forms.Add(NormalizationForm.FormKC); break;
                case "NFKD": forms.Add(NormalizationForm.FormKD); break;
                default: throw new EngineException($"{source}: normalizer \"{type}\" is not supported (supported: none, NFC, NFD, NFKC, NFKD)");
            }
        }
        Add(node);
        return forms.ToArray();
    }

    /// <summary>The special tokens a TemplateProcessing post-processor puts before and after a single sequence.</summary>
    static (string? Bos, string? Eos) TemplateSpecialTokens(JsonNode? node, string source)
    {
        if (node is not JsonObject obj) return (null, null);
        string? type = JsonFile.OptionalString(obj, "type", source);
        if (type == "Sequence" && obj["processors"] is JsonArray processors)
        {
            foreach (var p in processors)
                if (TemplateSpecialTokens(p, source) is var r && (r.Bos ?? r.Eos) is not null) return r;
            return (null, null);
        }
        if (type != "TemplateProcessing" || obj["single"] is not JsonArray single) return (null, null);
        string? bos = null, eos = null;
        bool seenSequence = false;
        foreach (var item in single)
        {
            if (item?["Sequence"] is not null) { seenSequence = true; continue; }
            if (item?["SpecialToken"]?["id"] is JsonValue v && v.TryGetValue(out string? id))
            {
                if (!seenSequence) bos ??= id;
                else eos = id;
            }
        }
        return (bos, eos);
    }

    /// <summary>Writes a tokenizer.json that Hugging Face tokenizers (and this class) can load.</summary>
    public static string Serialize(IReadOnlyList<string> tokens, IReadOnlyList<TokenType> types, IReadOnlyList<string> merges,
        BpePreTokenizer preTokenizer, NormalizationForm[] normalizers, bool ignoreMerges, int? bosId, int? eosId, bool addBos, bool addEos)
    {
        var added = new JsonArray();
        var vocab = new JsonObject();
        for (int id = 0; id < tokens.Count; id++)
        {
            if (types[id] is TokenType.Control or TokenType.UserDefined)
                added.Add(new JsonObject
                {
                    ["id"] = id, ["content"] = tokens[id], ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                    ["normalized"] = false, ["special"] = types[id] == TokenType.Control,
                });
            else if (types[id] != TokenType.Unused && !vocab.ContainsKey(tokens[id])) vocab[tokens[id]] = id;
        }
        JsonNode? normalizer = normalizers.Length == 0 ? null : new JsonObject
        {
            ["type"] = "Sequence",
            ["normalizers"] = new JsonArray(normalizers.Select(f => (JsonNode)new JsonObject
            {
                ["type"] = f switch { NormalizationForm.FormC => "NFC", NormalizationForm.FormD => "NFD", NormalizationForm.FormKC => "NFKC", _ => "NFKD" },
            }).ToArray()),
        };
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = preTokenizer.ToJson(),
            ["post_processor"] = PostProcessor(tokens, bosId, eosId, addBos, addEos),
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null, ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = ignoreMerges,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode)JsonValue.Create(m)).ToArray()),
            },
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    static JsonNode PostProcessor(IReadOnlyList<string> tokens, int? bosId, int? eosId, bool addBos, bool addEos)
    {
        if (!(addBos && bosId is not null) && !(addEos && eosId is not null))
            return new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true };
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
