using System.Text;
using System.Text.Json.Nodes;

namespace Engine.Tokenization;

/// <summary>
/// A tokenizer.json "normalizer": a sequence of Unicode normal forms, Replace (a literal or regex pattern), Prepend,
/// Lowercase and Strip, applied in order to each stretch of text between added tokens.
/// </summary>
internal sealed class HfNormalizer
{
    internal abstract record Step
    {
        public abstract string Apply(string text);
        public abstract JsonObject ToJson();
    }

    internal sealed record UnicodeForm(NormalizationForm Form) : Step
    {
        public override string Apply(string text) => text.Normalize(Form);
        public override JsonObject ToJson() => new() { ["type"] = Form switch
        {
            NormalizationForm.FormC => "NFC", NormalizationForm.FormD => "NFD", NormalizationForm.FormKC => "NFKC", _ => "NFKD",
        } };
    }

    internal sealed record Replace(string PatternText, bool IsRegex, UnicodeRegex? Regex, string Content) : Step
    {
        public override string Apply(string text)
        {
            if (!IsRegex) return text.Replace(PatternText, Content, StringComparison.Ordinal);
            var sb = new StringBuilder(text.Length);
            int last = 0;
            foreach (var (start, end) in Regex!.Matches(text))
            {
                sb.Append(text, last, start - last).Append(Content);
                last = end;
            }
            return sb.Append(text, last, text.Length - last).ToString();
        }

        public override JsonObject ToJson() => new()
        {
            ["type"] = "Replace",
            ["pattern"] = new JsonObject { [IsRegex ? "Regex" : "String"] = PatternText },
            ["content"] = Content,
        };
    }

    internal sealed record Prepend(string Prefix) : Step
    {
        public override string Apply(string text) => text.Length == 0 ? text : Prefix + text;
        public override JsonObject ToJson() => new() { ["type"] = "Prepend", ["prepend"] = Prefix };
    }

    internal sealed record Lowercase : Step
    {
        public override string Apply(string text) => text.ToLowerInvariant();
        public override JsonObject ToJson() => new() { ["type"] = "Lowercase" };
    }

    internal sealed record Strip(bool Left, bool Right) : Step
    {
        public override string Apply(string text) => Left && Right ? text.Trim() : Left ? text.TrimStart() : Right ? text.TrimEnd() : text;
        public override JsonObject ToJson() => new() { ["type"] = "Strip", ["strip_left"] = Left, ["strip_right"] = Right };
    }

    public IReadOnlyList<Step> Steps { get; }

    public HfNormalizer(IReadOnlyList<Step> steps) => Steps = steps;

    public static readonly HfNormalizer None = new(Array.Empty<Step>());

    public bool IsEmpty => Steps.Count == 0;

    public string Apply(string text)
    {
        foreach (var step in Steps) text = step.Apply(text);
        return text;
    }

    /// <summary>SentencePiece's dummy prefix written as a normalizer (Mistral / Llama 2 tokenizer.json).</summary>
    public bool PrependsSpaceSymbol => Steps.OfType<Prepend>().Any(p => p.Prefix == "\u2581");

    /// <summary>Spaces become "▁" (SentencePiece-style BPE).</summary>
    public bool EscapesSpaces => Steps.OfType<Replace>().Any(r => !r.IsRegex && r.PatternText == " " && r.Content == "\u2581");

    public static HfNormalizer FromJson(JsonNode? node, string source)
    {
        var steps = new List<Step>();
        Add(node, steps, source);
        return new HfNormalizer(steps);
    }

    static void Add(JsonNode? node, List<Step> steps, string source)
    {
        if (node is null) return;
        if (node is not JsonObject obj) throw new EngineException($"{source}: \"normalizer\" must be an object");
        string type = JsonFile.OptionalString(obj, "type", source) ?? "";
        switch (type)
        {
            case "Sequence":
                if (obj["normalizers"] is not JsonArray list) throw new EngineException($"{source}: normalizer Sequence without a \"normalizers\" list");
                foreach (var item in list) Add(item, steps, source);
                break;
            case "NFC": steps.Add(new UnicodeForm(NormalizationForm.FormC)); break;
            case "NFD": steps.Add(new UnicodeForm(NormalizationForm.FormD)); break;
            case "NFKC": steps.Add(new UnicodeForm(NormalizationForm.FormKC)); break;
            case "NFKD": steps.Add(new UnicodeForm(NormalizationForm.FormKD)); break;
            case "Lowercase": steps.Add(new Lowercase()); break;
            case "Strip":
                steps.Add(new Strip(JsonFile.OptionalBool(obj, "strip_left", source) ?? true, JsonFile.OptionalBool(obj, "strip_right", source) ?? true));
                break;
            case "Prepend":
                steps.Add(new Prepend(JsonFile.OptionalString(obj, "prepend", source)
                    ?? throw new EngineException($"{source}: normalizer Prepend needs a \"prepend\" string")));
                break;
            case "Replace":
                var (text, isRegex) = PatternOf(obj, "normalizer Replace", source);
                string content = JsonFile.OptionalString(obj, "content", source) ?? throw new EngineException($"{source}: normalizer Replace needs a \"content\" string");
                steps.Add(new Replace(text, isRegex, isRegex ? new UnicodeRegex(text, source) : null, content));
                break;
            default:
                throw new EngineException($"{source}: normalizer \"{type}\" is not supported (supported: Sequence, NFC, NFD, NFKC, NFKD, Replace, Prepend, Lowercase, Strip)");
        }
    }

    /// <summary>A {"String": ...} or {"Regex": ...} pattern object.</summary>
    internal static (string Text, bool IsRegex) PatternOf(JsonObject obj, string what, string source)
    {
        if (obj["pattern"] is not JsonObject pattern) throw new EngineException($"{source}: {what} needs a \"pattern\" object");
        if (JsonFile.OptionalString(pattern, "Regex", source) is { } regex) return (regex, true);
        if (JsonFile.OptionalString(pattern, "String", source) is { Length: > 0 } literal) return (literal, false);
        throw new EngineException($"{source}: {what} pattern must be {{\"Regex\": ...}} or a non-empty {{\"String\": ...}}");
    }

    public JsonNode? ToJson() => Steps.Count == 0 ? null : new JsonObject
    {
        ["type"] = "Sequence",
        ["normalizers"] = new JsonArray(Steps.Select(s => (JsonNode)s.ToJson()).ToArray()),
    };
}
