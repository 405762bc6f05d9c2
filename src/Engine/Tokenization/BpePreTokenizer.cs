using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Engine.Tokenization;

/// <summary>
/// Splits text into the words that byte-level BPE encodes one at a time, as a tokenizer.json pre_tokenizer
/// does: a sequence of Split (regex, matches isolated or removed) and ByteLevel (optional prefix space, optional
/// GPT-2 regex) steps, each applied to every piece the previous one produced.
/// </summary>
internal sealed class BpePreTokenizer
{
    internal abstract record Step
    {
        public abstract IEnumerable<string> Apply(string piece);
        public abstract JsonObject ToJson();
    }

    /// <summary>HF "Split" with behavior Isolated (matches and the text between them are pieces) or Removed.</summary>
    internal sealed record SplitStep(Regex Pattern, string PatternText, bool IsRegex, bool RemoveMatches) : Step
    {
        public override IEnumerable<string> Apply(string piece) => SplitOn(Pattern, piece, RemoveMatches);

        public override JsonObject ToJson() => new()
        {
            ["type"] = "Split",
            ["pattern"] = new JsonObject { [IsRegex ? "Regex" : "String"] = PatternText },
            ["behavior"] = RemoveMatches ? "Removed" : "Isolated",
            ["invert"] = false,
        };
    }

    /// <summary>HF "ByteLevel": the byte mapping itself happens in the BPE model; here only its splitting.</summary>
    internal sealed record ByteLevelStep(bool AddPrefixSpace, bool UseRegex) : Step
    {
        static readonly Regex Gpt2 = Compile(PreTokenizerPatterns.Gpt2, "GPT-2 pattern");

        public override IEnumerable<string> Apply(string piece)
        {
            if (AddPrefixSpace && !piece.StartsWith(' ')) piece = " " + piece;
            return UseRegex ? SplitOn(Gpt2, piece, false) : new[] { piece };
        }

        public override JsonObject ToJson() => new()
        {
            ["type"] = "ByteLevel",
            ["add_prefix_space"] = AddPrefixSpace,
            ["trim_offsets"] = true,
            ["use_regex"] = UseRegex,
        };
    }

    public IReadOnlyList<Step> Steps { get; }

    public BpePreTokenizer(IReadOnlyList<Step> steps) => Steps = steps;

    /// <summary>Llama-3 / Qwen2 layout: split with the pattern, then the byte-level step without its own regex.</summary>
    public static BpePreTokenizer FromPattern(string pattern, string source) =>
        new(new Step[] { new SplitStep(Compile(pattern, source), pattern, true, false), new ByteLevelStep(false, false) });

    public string? MainPattern => Steps.OfType<SplitStep>().FirstOrDefault(s => s.IsRegex)?.PatternText
        ?? (Steps.OfType<ByteLevelStep>().Any(b => b.UseRegex) ? PreTokenizerPatterns.Gpt2 : null);

    public bool HasByteLevel => Steps.OfType<ByteLevelStep>().Any();

    public List<string> Split(string text)
    {
        var pieces = new List<string> { text };
        foreach (var step in Steps)
        {
            var next = new List<string>(pieces.Count * 2);
            foreach (var piece in pieces) next.AddRange(step.Apply(piece));
            pieces = next;
        }
        return pieces;
    }

    static IEnumerable<string> SplitOn(Regex regex, string text, bool removeMatches)
    {
        var result = new List<string>();
        int last = 0;
        try
        {
            for (var m = regex.Match(text); m.Success; m = m.NextMatch())
            {
                if (m.Length == 0) continue;
                if (m.Index > last) result.Add(text[last..m.Index]);
                if (!removeMatches) result.Add(m.Value);
                last = m.Index + m.Length;
            }
        }
        catch (RegexMatchTimeoutException)
        {
            throw new EngineException($"pre-tokenizer pattern /{regex}/ took too long on the input (catastrophic backtracking?)");
        }
        if (last < text.Length) result.Add(text[last..]);
        return result;
    }

    internal static Regex Compile(string pattern, string source)
    {
        try { return new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(10)); }
        catch (ArgumentException e)
        {
            throw new EngineException($"{source}: pre-tokenizer pattern is not a regex .NET supports: {e.Message}", e);
        }
    }

    /// <summary>Parses a tokenizer.json "pre_tokenizer" (null: no splitting).</summary>
    public static BpePreTokenizer FromJson(JsonNode? node, string source)
    {
        var steps = new List<Step>();
        AddSteps(node, steps, source);
        return new BpePreTokenizer(steps);
    }

    static void AddSteps(JsonNode? node, List<Step> steps, string source)
    {
        if (node is null) return;
        if (node is not JsonObject obj) throw new EngineException($"{source}: \"pre_tokenizer\" must be an object");
        string type = JsonFile.OptionalString(obj, "type", source) ?? throw new EngineException($"{source}: pre_tokenizer without a \"type\"");
        switch (type)
        {
            case "Sequence":
                if (obj["pretokenizers"] is not JsonArray list) throw new EngineException($"{source}: pre_tokenizer Sequence without a \"pretokenizers\" list");
                foreach (var item in list) AddSteps(item, steps, source);
                break;
            case "ByteLevel":
                steps.Add(new ByteLevelStep(JsonFile.OptionalBool(obj, "add_prefix_space", source) ?? true, JsonFile.OptionalBool(obj, "use_regex", source) ?? true));
                break;
            case "Split":
                steps.Add(ParseSplit(obj, source));
                break;
            default:
                throw new EngineException($"{source}: pre_tokenizer type \"{type}\" is not supported (supported: Sequence, Split, ByteLevel)");
        }
    }

    static SplitStep ParseSplit(JsonObject obj, string source)
    {
        if (JsonFile.OptionalBool(obj, "invert", source) == true) throw new EngineException($"{source}: pre_tokenizer Split with invert=true is not supported");
        string behavior = JsonFile.OptionalString(obj, "behavior", source) ?? "Isolated";
        if (behavior is not ("Isolated" or "Removed"))
            throw new EngineException($"{source}: pre_tokenizer Split behavior \"{behavior}\" is not supported (supported: Isolated, Removed)");
        if (obj["pattern"] is not JsonObject pattern) throw new EngineException($"{source}: pre_tokenizer Split needs a \"pattern\" object");
        if (JsonFile.OptionalString(pattern, "Regex", source) is { } regex)
            return new SplitStep(Compile(regex, source), regex, true, behavior == "Removed");
        if (JsonFile.OptionalString(pattern, "String", source) is { } literal && literal.Length > 0)
            return new SplitStep(Compile(Regex.Escape(literal), source), literal, false, behavior == "Removed");
        throw new EngineException($"{source}: pre_tokenizer Split pattern must be {{\"Regex\": ...}} or a non-empty {{\"String\": ...}}");
    }

    public JsonNode ToJson() => new JsonObject
    {
        ["type"] = "Sequence",
        ["pretokenizers"] = new JsonArray(Steps.Select(s => (JsonNode)s.ToJson()).ToArray()),
    };
}
