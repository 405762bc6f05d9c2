using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Tokenization;

/// <summary>
/// A token the config lists in <c>added_tokens_decoder</c>, with Hugging Face's matching flags (Normalized null: the
/// default, which is "not special").
/// </summary>
public sealed record AddedTokenInfo(int Id, string Content, bool Special, bool SingleWord = false, bool LStrip = false,
    bool RStrip = false, bool? Normalized = null);

/// <summary>
/// The settings of a Hugging Face <c>tokenizer_config.json</c> that change tokenization: whether BOS/EOS are
/// added, the special token strings, the chat template and the added tokens. The parsed file is kept so that
/// saving writes back the fields this class does not interpret.
/// </summary>
public sealed class TokenizerConfig
{
    public const string FileName = "tokenizer_config.json";
    public const string ChatTemplateFileName = "chat_template.jinja";

    public string Source { get; init; } = FileName;
    public bool? AddBosToken { get; init; }
    public bool? AddEosToken { get; init; }
    public string? BosToken { get; init; }
    public string? EosToken { get; init; }
    public string? UnkToken { get; init; }
    public string? PadToken { get; init; }
    public string? ChatTemplate { get; init; }
    public IReadOnlyList<AddedTokenInfo> AddedTokens { get; init; } = Array.Empty<AddedTokenInfo>();
    internal JsonObject Raw { get; init; } = new();

    /// <summary>Reads tokenizer_config.json (and chat_template.jinja when the config has no template), or null when absent.</summary>
    public static TokenizerConfig? Load(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) return null;
        var config = Parse(JsonFile.ReadObject(path), path);
        string templatePath = Path.Combine(directory, ChatTemplateFileName);
        if (config.ChatTemplate is null && File.Exists(templatePath))
            config = config.WithChatTemplate(File.ReadAllText(templatePath));
        return config;
    }

    TokenizerConfig WithChatTemplate(string template) => new()
    {
        Source = Source, AddBosToken = AddBosToken, AddEosToken = AddEosToken, BosToken = BosToken, EosToken = EosToken,
        UnkToken = UnkToken, PadToken = PadToken, ChatTemplate = template, AddedTokens = AddedTokens, Raw = Raw,
    };

    public static TokenizerConfig Parse(JsonObject obj, string source) => new()
    {
        Source = source,
        AddBosToken = JsonFile.OptionalBool(obj, "add_bos_token", source),
        AddEosToken = JsonFile.OptionalBool(obj, "add_eos_token", source),
        BosToken = TokenContent(obj["bos_token"], "bos_token", source),
        EosToken = TokenContent(obj["eos_token"], "eos_token", source),
        UnkToken = TokenContent(obj["unk_token"], "unk_token", source),
        PadToken = TokenContent(obj["pad_token"], "pad_token", source),
        ChatTemplate = ParseChatTemplate(obj["chat_template"], source),
        AddedTokens = ParseAddedTokensDecoder(obj["added_tokens_decoder"], source),
        Raw = obj,
    };

    /// <summary>A special token is written either as a string or as an object {"content": ...} (AddedToken).</summary>
    static string? TokenContent(JsonNode? node, string key, string source)
    {
        switch (node)
        {
            case null: return null;
            case JsonValue v when v.TryGetValue(out string? s): return s;
            case JsonObject o when o["content"] is JsonValue c && c.TryGetValue(out string? content): return content;
            default: throw new EngineException($"{source}: \"{key}\" must be a string or an object with a \"content\" string");
        }
    }

    /// <summary>A template string, or a list of {name, template} of which "default" is the one used.</summary>
    static string? ParseChatTemplate(JsonNode? node, string source)
    {
        switch (node)
        {
            case null: return null;
            case JsonValue v when v.TryGetValue(out string? s): return s;
            case JsonArray list:
                foreach (var item in list)
                {
                    if (item is not JsonObject entry || entry["template"] is not JsonValue t || !t.TryGetValue(out string? template))
                        throw new EngineException($"{source}: each \"chat_template\" entry must be an object with \"name\" and \"template\" strings");
                    if (entry["name"] is JsonValue n && n.TryGetValue(out string? name) && name == "default") return template;
                }
                return null;
            default: throw new EngineException($"{source}: \"chat_template\" must be a string or a list of {{name, template}}");
        }
    }

    static IReadOnlyList<AddedTokenInfo> ParseAddedTokensDecoder(JsonNode? node, string source)
    {
        if (node is null) return Array.Empty<AddedTokenInfo>();
        if (node is not JsonObject map) throw new EngineException($"{source}: \"added_tokens_decoder\" must be an object mapping ids to tokens");
        var result = new List<AddedTokenInfo>();
        foreach (var (key, value) in map)
        {
            if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id))
                throw new EngineException($"{source}: added_tokens_decoder key \"{key}\" is not a token id");
            if (value is not JsonObject entry || entry["content"] is not JsonValue c || !c.TryGetValue(out string? content))
                throw new EngineException($"{source}: added_tokens_decoder[\"{key}\"] must be an object with a \"content\" string");
            string where = $"{source}: added_tokens_decoder[\"{key}\"]";
            result.Add(new AddedTokenInfo(id, content, JsonFile.OptionalBool(entry, "special", where) ?? false,
                JsonFile.OptionalBool(entry, "single_word", where) ?? false, JsonFile.OptionalBool(entry, "lstrip", where) ?? false,
                JsonFile.OptionalBool(entry, "rstrip", where) ?? false, JsonFile.OptionalBool(entry, "normalized", where)));
        }
        return result;
    }

    /// <summary>
    /// Writes tokenizer_config.json for a tokenizer: its BOS/EOS settings, special tokens, chat template and the
    /// special/user-defined tokens, over the fields of the file it was loaded with (if any).
    /// </summary>
    internal static void Write(string path, TextTokenizer tokenizer, JsonObject? original, string tokenizerClass)
    {
        var obj = original?.DeepClone() as JsonObject ?? new JsonObject();
        if (obj["tokenizer_class"] is null) obj["tokenizer_class"] = tokenizerClass;
        obj["add_bos_token"] = tokenizer.AddBos;
        obj["add_eos_token"] = tokenizer.AddEos;
        SetToken(obj, "bos_token", tokenizer, tokenizer.BosId);
        SetToken(obj, "eos_token", tokenizer, tokenizer.EosId);
        SetToken(obj, "unk_token", tokenizer, tokenizer.UnkId);
        SetToken(obj, "pad_token", tokenizer, tokenizer.PadId);
        if (ParseChatTemplate(obj["chat_template"], path) != tokenizer.ChatTemplate)
        {
            if (tokenizer.ChatTemplate is null) obj.Remove("chat_template");
            else obj["chat_template"] = tokenizer.ChatTemplate;
        }

        var decoder = new JsonObject();
        var oldDecoder = obj["added_tokens_decoder"] as JsonObject;
        for (int id = 0; id < tokenizer.TokenTypes.Count; id++)
        {
            var type = tokenizer.TokenTypes[id];
            if (type is not (TokenType.Control or TokenType.UserDefined or TokenType.Unknown)) continue;
            string key = id.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (oldDecoder?[key] is JsonObject old && TokenContent(old, key, path) == tokenizer.Tokens[id]
                && (old["special"]?.GetValue<bool>() ?? false) == (type != TokenType.UserDefined))
            {
                decoder[key] = old.DeepClone();
                continue;
            }
            decoder[key] = new JsonObject
            {
                ["content"] = tokenizer.Tokens[id],
                ["lstrip"] = false,
                ["normalized"] = false,
                ["rstrip"] = false,
                ["single_word"] = false,
                ["special"] = type != TokenType.UserDefined,
            };
        }
        obj["added_tokens_decoder"] = decoder;

        string json = obj.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        Util.AtomicDirectory.WriteFile(path, tmp => File.WriteAllText(tmp, json + "\n"));
    }

    /// <summary>
    /// Tokens from tokenizer_config.json's added_tokens_decoder: they must agree with the pieces they name, and
    /// new ones extend the vocabulary contiguously (e.g. a "&lt;pad&gt;" appended by a fine-tune).
    /// </summary>
    internal static void ApplyAddedTokens(List<string> pieces, List<TokenType> types, List<float>? scores, IReadOnlyList<AddedTokenInfo> added, string source)
    {
        foreach (var token in added.OrderBy(t => t.Id))
        {
            if (token.Id < pieces.Count)
            {
                if (pieces[token.Id] != token.Content)
                    throw new EngineException($"{source}: added token {token.Id} is \"{token.Content}\" but the vocabulary has \"{pieces[token.Id]}\" there");
                if (token.Special && types[token.Id] is TokenType.Normal or TokenType.UserDefined) types[token.Id] = TokenType.Control;
            }
            else if (token.Id == pieces.Count)
            {
                if (token.Content.Length == 0) throw new EngineException($"{source}: added token {token.Id} is empty");
                pieces.Add(token.Content);
                scores?.Add(0);
                types.Add(token.Special ? TokenType.Control : TokenType.UserDefined);
            }
            else throw new EngineException($"{source}: added token id {token.Id} is out of range (vocabulary of {pieces.Count}; added tokens must follow it without gaps)");
        }
    }

    static void SetToken(JsonObject obj, string key, TextTokenizer tokenizer, int? id)
    {
        string? content = id is int i ? tokenizer.Tokens[i] : null;
        if (TokenContent(obj[key], key, FileName) == content && (content is not null || obj.ContainsKey(key))) return;
        obj[key] = content;
    }
}
