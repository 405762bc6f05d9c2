using System.Text;
using System.Text.Json.Nodes;

namespace Engine.Tokenization;

/// <summary>A pre-tokenized piece, and whether it begins at the start of the input (Metaspace's "first" scheme).</summary>
internal readonly record struct PrePiece(string Text, bool AtInputStart);

/// <summary>
/// A tokenizer.json "pre_tokenizer": cuts normalized text into the words that BPE encodes one at a time. Supported
/// steps: Split (regex or literal, every delimiter behaviour, invert), ByteLevel (optional prefix space and GPT-2
/// regex, then the byte-to-character mapping) and Metaspace (spaces to "▁", prefix scheme, split); each applies to
/// every piece the previous one produced, and empty pieces are dropped.
/// </summary>
internal sealed class HfPreTokenizer
{
    internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

    internal abstract record Step
    {
        public abstract void Apply(PrePiece piece, List<PrePiece> output);
        public abstract JsonObject ToJson();
    }

    internal sealed record SplitStep(UnicodeRegex Pattern, string PatternText, bool IsRegex, SplitBehavior Behavior, bool Invert) : Step
    {
        public override void Apply(PrePiece piece, List<PrePiece> output)
        {
            foreach (var (start, end) in SplitBounds(Pattern, piece.Text, Behavior, Invert))
                output.Add(new PrePiece(piece.Text[start..end], piece.AtInputStart && start == 0));
        }

        public override JsonObject ToJson() => new()
        {
            ["type"] = "Split",
            ["pattern"] = new JsonObject { [IsRegex ? "Regex" : "String"] = PatternText },
            ["behavior"] = Behavior.ToString(),
            ["invert"] = Invert,
        };
    }

    /// <summary>HF "ByteLevel": optional prefix space and GPT-2 split, then each UTF-8 byte as its alphabet character.</summary>
    internal sealed record ByteLevelStep(bool AddPrefixSpace, bool UseRegex) : Step
    {
        static readonly UnicodeRegex Gpt2 = new(PreTokenizerPatterns.Gpt2, "GPT-2 pattern");

        public override void Apply(PrePiece piece, List<PrePiece> output)
        {
            string text = piece.Text;
            if (AddPrefixSpace && !text.StartsWith(' ')) text = " " + text;
            if (!UseRegex)
            {
                output.Add(piece with { Text = ByteLevelAlphabet.Encode(text) });
                return;
            }
            foreach (var (start, end) in SplitBounds(Gpt2, text, SplitBehavior.Isolated, false))
                output.Add(new PrePiece(ByteLevelAlphabet.Encode(text[start..end]), piece.AtInputStart && start == 0));
        }

        public override JsonObject ToJson() => new()
        {
            ["type"] = "ByteLevel", ["add_prefix_space"] = AddPrefixSpace, ["trim_offsets"] = true, ["use_regex"] = UseRegex,
        };
    }

    internal enum PrependScheme { Always, First, Never }

    /// <summary>HF "Metaspace": spaces become the replacement, a prefix is added by the scheme, then optionally split before each replacement.</summary>
    internal sealed record MetaspaceStep(char Replacement, PrependScheme Scheme, bool SplitWords) : Step
    {
        readonly UnicodeRegex _replacement = UnicodeRegex.Literal(Replacement.ToString(), "Metaspace");

        public override void Apply(PrePiece piece, List<PrePiece> output)
        {
            string text = piece.Text.Replace(' ', Replacement);
            bool prepend = Scheme == PrependScheme.Always || (Scheme == PrependScheme.First && piece.AtInputStart);
            if (prepend && !text.StartsWith(Replacement)) text = Replacement + text;
            if (!SplitWords)
            {
                output.Add(piece with { Text = text });
                return;
            }
            foreach (var (start, end) in SplitBounds(_replacement, text, SplitBehavior.MergedWithNext, false))
                output.Add(new PrePiece(text[start..end], piece.AtInputStart && start == 0));
        }

        public override JsonObject ToJson() => new()
        {
            ["type"] = "Metaspace", ["replacement"] = Replacement.ToString(),
            ["prepend_scheme"] = Scheme.ToString().ToLowerInvariant(), ["split"] = SplitWords,
        };
    }

    public IReadOnlyList<Step> Steps { get; }

    public HfPreTokenizer(IReadOnlyList<Step> steps) => Steps = steps;

    public static readonly HfPreTokenizer None = new(Array.Empty<Step>());

    /// <summary>Llama-3 / Qwen2 layout: split with the pattern, then the byte-level step without its own regex.</summary>
    public static HfPreTokenizer FromPattern(string pattern, string source) =>
        new(new Step[] { new SplitStep(new UnicodeRegex(pattern, source), pattern, true, SplitBehavior.Isolated, false), new ByteLevelStep(false, false) });

    /// <summary>The main regex (for GGUF's tokenizer.ggml.pre), if any.</summary>
    public string? MainPattern => Steps.OfType<SplitStep>().FirstOrDefault(s => s.IsRegex)?.PatternText
        ?? (Steps.OfType<ByteLevelStep>().Any(b => b.UseRegex) ? PreTokenizerPatterns.Gpt2 : null);

    public bool HasByteLevel => Steps.OfType<ByteLevelStep>().Any();
    public MetaspaceStep? Metaspace => Steps.OfType<MetaspaceStep>().FirstOrDefault();

    /// <summary>The words of <paramref name="text"/>; <paramref name="atInputStart"/> says whether it begins the input.</summary>
    public List<string> Split(string text, bool atInputStart = true)
    {
        var pieces = new List<PrePiece> { new(text, atInputStart) };
        foreach (var step in Steps)
        {
            var next = new List<PrePiece>(pieces.Count * 2);
            foreach (var piece in pieces) step.Apply(piece, next);
            next.RemoveAll(p => p.Text.Length == 0);
            pieces = next;
        }
        return pieces.ConvertAll(p => p.Text);
    }

    /// <summary>The kept pieces of <paramref name="text"/> as the reference's NormalizedString::split computes them.</summary>
    static List<(int Start, int End)> SplitBounds(UnicodeRegex pattern, string text, SplitBehavior behavior, bool invert)
    {
        // Alternating (bounds, isMatch) stretches covering the text.
        var stretches = new List<(int Start, int End, bool Match)>();
        if (text.Length == 0) stretches.Add((0, 0, false));
        else
        {
            int prev = 0;
            foreach (var (start, end) in pattern.Matches(text))
            {
                if (prev != start) stretches.Add((prev, start, false));
                stretches.Add((start, end, true));
                prev = end;
            }
            if (prev != text.Length) stretches.Add((prev, text.Length, false));
        }
        if (invert) stretches = stretches.ConvertAll(s => (s.Start, s.End, !s.Match));

        var kept = new List<(int Start, int End)>();
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var s in stretches) kept.Add((s.Start, s.End));
                break;
            case SplitBehavior.Removed:
                foreach (var s in stretches) if (!s.Match) kept.Add((s.Start, s.End));
                break;
            case SplitBehavior.Contiguous:
            {
                bool previous = false;
                foreach (var s in stretches)
                {
                    if (s.Match == previous && kept.Count > 0) kept[^1] = (kept[^1].Start, s.End);
                    else kept.Add((s.Start, s.End));
                    previous = s.Match;
                }
                break;
            }
            case SplitBehavior.MergedWithPrevious:
            {
                bool previous = false;
                foreach (var s in stretches)
                {
                    if (s.Match && !previous && kept.Count > 0) kept[^1] = (kept[^1].Start, s.End);
                    else kept.Add((s.Start, s.End));
                    previous = s.Match;
                }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                bool previous = false;
                for (int i = stretches.Count - 1; i >= 0; i--)
                {
                    var s = stretches[i];
                    if (s.Match && !previous && kept.Count > 0) kept[^1] = (s.Start, kept[^1].End);
                    else kept.Add((s.Start, s.End));
                    previous = s.Match;
                }
                kept.Reverse();
                break;
            }
        }
        return kept;
    }

    /// <summary>Parses a tokenizer.json "pre_tokenizer" (null: no splitting).</summary>
    public static HfPreTokenizer FromJson(JsonNode? node, string source)
    {
        var steps = new List<Step>();
        AddSteps(node, steps, source);
        return new HfPreTokenizer(steps);
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
            case "Metaspace":
                steps.Add(ParseMetaspace(obj, source));
                break;
            default:
                throw new EngineException($"{source}: pre_tokenizer type \"{type}\" is not supported (supported: Sequence, Split, ByteLevel, Metaspace)");
        }
    }

    static SplitStep ParseSplit(JsonObject obj, string source)
    {
        string behaviorName = JsonFile.OptionalString(obj, "behavior", source) ?? "Isolated";
        if (!Enum.TryParse<SplitBehavior>(behaviorName, ignoreCase: false, out var behavior) || !Enum.IsDefined(behavior))
            throw new EngineException($"{source}: pre_tokenizer Split behavior \"{behaviorName}\" is not supported (supported: {string.Join(", ", Enum.GetNames<SplitBehavior>())})");
        var (text, isRegex) = HfNormalizer.PatternOf(obj, "pre_tokenizer Split", source);
        var regex = isRegex ? new UnicodeRegex(text, source) : UnicodeRegex.Literal(text, source);
        return new SplitStep(regex, text, isRegex, behavior, JsonFile.OptionalBool(obj, "invert", source) ?? false);
    }

    static MetaspaceStep ParseMetaspace(JsonObject obj, string source)
    {
        string replacement = JsonFile.OptionalString(obj, "replacement", source) ?? "\u2581";
        if (replacement.Length != 1) throw new EngineException($"{source}: pre_tokenizer Metaspace replacement must be one character");
        string schemeName = JsonFile.OptionalString(obj, "prepend_scheme", source) ?? "always";
        var scheme = schemeName switch
        {
            "always" => PrependScheme.Always, "first" => PrependScheme.First, "never" => PrependScheme.Never,
            _ => throw new EngineException($"{source}: pre_tokenizer Metaspace prepend_scheme \"{schemeName}\" is not one of always, first, never"),
        };
        if (JsonFile.OptionalBool(obj, "add_prefix_space", source) == false) scheme = PrependScheme.Never;
        return new MetaspaceStep(replacement[0], scheme, JsonFile.OptionalBool(obj, "split", source) ?? true);
    }

    public JsonNode? ToJson() => Steps.Count == 0 ? null : new JsonObject
    {
        ["type"] = "Sequence",
        ["pretokenizers"] = new JsonArray(Steps.Select(s => (JsonNode)s.ToJson()).ToArray()),
    };
}
