using System.Text;
using System.Text.Json.Nodes;

namespace Engine.Tokenization;

/// <summary>
/// A tokenizer.json "decoder": a chain of steps over the token strings (ByteLevel, Replace, ByteFallback, Fuse,
/// Strip, Metaspace), whose results are concatenated. Without a decoder the tokens are joined with spaces, as the
/// reference does.
/// </summary>
internal sealed class HfDecoder
{
    internal abstract record Step
    {
        public abstract List<string> Apply(List<string> tokens);
        public abstract JsonObject ToJson();
    }

    /// <summary>Maps byte-alphabet characters back to bytes; a token with other characters keeps its own UTF-8.</summary>
    internal sealed record ByteLevel : Step
    {
        public override List<string> Apply(List<string> tokens)
        {
            var bytes = new List<byte>();
            foreach (var t in tokens) ByteLevelAlphabet.AppendBytes(t, bytes);
            return new List<string> { Encoding.UTF8.GetString(bytes.ToArray()) };
        }

        public override JsonObject ToJson() => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true };
    }

    internal sealed record Replace(string PatternText, bool IsRegex, UnicodeRegex? Regex, string Content) : Step
    {
        readonly HfNormalizer.Replace _replace = new(PatternText, IsRegex, Regex, Content);
        public override List<string> Apply(List<string> tokens) => tokens.ConvertAll(_replace.Apply);
        public override JsonObject ToJson() => _replace.ToJson();
    }

    /// <summary>Runs of &lt;0xXX&gt; tokens become their UTF-8 text, or one U+FFFD per byte when that is not valid UTF-8.</summary>
    internal sealed record ByteFallback : Step
    {
        static readonly UTF8Encoding Strict = new(false, true);

        public override List<string> Apply(List<string> tokens)
        {
            var result = new List<string>(tokens.Count);
            var pending = new List<byte>();
            void Flush()
            {
                if (pending.Count == 0) return;
                try { result.Add(Strict.GetString(pending.ToArray())); }
                catch (DecoderFallbackException) { for (int i = 0; i < pending.Count; i++) result.Add("\uFFFD"); }
                pending.Clear();
            }
            foreach (var token in tokens)
            {
                if (ByteOf(token) is byte b) pending.Add(b);
                else
                {
                    Flush();
                    result.Add(token);
                }
            }
            Flush();
            return result;
        }

        /// <summary>The byte of a "&lt;0xXX&gt;" token (six UTF-8 bytes, hex digits in either case).</summary>
        internal static byte? ByteOf(string token) =>
            token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte b) ? b : null;

        public override JsonObject ToJson() => new() { ["type"] = "ByteFallback" };
    }

    internal sealed record Fuse : Step
    {
        public override List<string> Apply(List<string> tokens) => new() { string.Concat(tokens) };
        public override JsonObject ToJson() => new() { ["type"] = "Fuse" };
    }

    /// <summary>Removes up to Start leading and Stop trailing copies of Content from each token.</summary>
    internal sealed record Strip(string Content, int Start, int Stop) : Step
    {
        public override List<string> Apply(List<string> tokens) => tokens.ConvertAll(token =>
        {
            var runes = token.EnumerateRunes().ToList();
            var content = Rune.GetRuneAt(Content, 0);
            int from = 0;
            while (from < Start && from < runes.Count && runes[from] == content) from++;
            int to = runes.Count;
            for (int i = 0; i < Stop && to > from && runes[to - 1] == content; i++) to--;
            var sb = new StringBuilder();
            for (int i = from; i < to; i++) sb.Append(runes[i].ToString());
            return sb.ToString();
        });

        public override JsonObject ToJson() => new() { ["type"] = "Strip", ["content"] = Content, ["start"] = Start, ["stop"] = Stop };
    }

    /// <summary>HF Metaspace decoder: the replacement becomes a space, except in the first token when a prefix was added.</summary>
    internal sealed record Metaspace(char Replacement, bool PrefixAdded, string SchemeName) : Step
    {
        public override List<string> Apply(List<string> tokens)
        {
            var result = new List<string>(tokens.Count);
            for (int i = 0; i < tokens.Count; i++)
                result.Add(i == 0 && PrefixAdded ? tokens[i].Replace(Replacement.ToString(), "") : tokens[i].Replace(Replacement, ' '));
            return result;
        }

        public override JsonObject ToJson() => new() { ["type"] = "Metaspace", ["replacement"] = Replacement.ToString(), ["prepend_scheme"] = SchemeName, ["split"] = true };
    }

    public IReadOnlyList<Step>? Steps { get; }

    /// <param name="steps">Null: no decoder (tokens joined with spaces).</param>
    public HfDecoder(IReadOnlyList<Step>? steps) => Steps = steps;

    public bool IsByteLevel => Steps?.OfType<ByteLevel>().Any() == true;

    public string Decode(List<string> tokens)
    {
        if (Steps is null) return string.Join(" ", tokens);
        foreach (var step in Steps) tokens = step.Apply(tokens);
        return string.Concat(tokens);
    }

    public static HfDecoder FromJson(JsonNode? node, string source)
    {
        if (node is null) return new HfDecoder(null);
        var steps = new List<Step>();
        Add(node, steps, source);
        return new HfDecoder(steps);
    }

    static void Add(JsonNode node, List<Step> steps, string source)
    {
        if (node is not JsonObject obj) throw new EngineException($"{source}: \"decoder\" must be an object");
        string type = JsonFile.OptionalString(obj, "type", source) ?? "";
        switch (type)
        {
            case "Sequence":
                if (obj["decoders"] is not JsonArray list) throw new EngineException($"{source}: decoder Sequence without a \"decoders\" list");
                foreach (var item in list)
                    Add(item ?? throw new EngineException($"{source}: decoder Sequence has a null entry"), steps, source);
                break;
            case "ByteLevel": steps.Add(new ByteLevel()); break;
            case "ByteFallback": steps.Add(new ByteFallback()); break;
            case "Fuse": steps.Add(new Fuse()); break;
            case "Replace":
                var (text, isRegex) = HfNormalizer.PatternOf(obj, "decoder Replace", source);
                steps.Add(new Replace(text, isRegex, isRegex ? new UnicodeRegex(text, source) : null,
                    JsonFile.OptionalString(obj, "content", source) ?? throw new EngineException($"{source}: decoder Replace needs a \"content\" string")));
                break;
            case "Strip":
                string content = JsonFile.OptionalString(obj, "content", source) ?? " ";
                if (content.EnumerateRunes().Count() != 1) throw new EngineException($"{source}: decoder Strip content must be one character");
                steps.Add(new Strip(content, NonNegative(obj, "start", source), NonNegative(obj, "stop", source)));
                break;
            case "Metaspace":
                string replacement = JsonFile.OptionalString(obj, "replacement", source) ?? "\u2581";
                if (replacement.Length != 1) throw new EngineException($"{source}: decoder Metaspace replacement must be one character");
                string scheme = JsonFile.OptionalString(obj, "prepend_scheme", source) ?? "always";
                bool prefix = scheme != "never" && JsonFile.OptionalBool(obj, "add_prefix_space", source) != false;
                steps.Add(new Metaspace(replacement[0], prefix, prefix ? scheme : "never"));
                break;
            default:
                throw new EngineException($"{source}: decoder \"{type}\" is not supported (supported: Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace)");
        }
    }

    static int NonNegative(JsonObject obj, string key, string source)
    {
        var node = obj[key];
        if (node is null) return 0;
        if (node is JsonValue v && v.TryGetValue(out int n) && n >= 0) return n;
        throw new EngineException($"{source}: decoder Strip \"{key}\" must be a non-negative integer");
    }

    public JsonNode? ToJson() => Steps is null ? null : new JsonObject
    {
        ["type"] = "Sequence",
        ["decoders"] = new JsonArray(Steps.Select(s => (JsonNode)s.ToJson()).ToArray()),
    };
}
