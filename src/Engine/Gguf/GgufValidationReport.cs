using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Gguf;

/// <summary>llama.cpp against Engine on one token sequence (a prompt or the held-out text).</summary>
/// <param name="MaxAbsDiff">max |Δlogit| over positions and vocabulary</param>
/// <param name="RelativeError">max over positions of max |Δlogit| / σ(logits at that position)</param>
public sealed record SequenceComparison(string Label, int Tokens, double MaxAbsDiff, double RelativeError, int Top1Agreements);

/// <summary>Faithfulness of the file: llama.cpp's logits against Engine's forward of the weights as stored.</summary>
public sealed class FaithfulnessReport
{
    public required GgufExportType Type { get; init; }
    public required FaithfulnessTolerance Tolerance { get; init; }
    public required IReadOnlyList<SequenceComparison> Sequences { get; init; }
    public required int LlamaCppVocabSize { get; init; }
    public required int EngineVocabSize { get; init; }

    public int Positions => Sequences.Sum(s => s.Tokens);
    public double MaxAbsDiff => Sequences.Count == 0 ? 0 : Sequences.Max(s => s.MaxAbsDiff);
    public double MaxRelativeError => Sequences.Count == 0 ? 0 : Sequences.Max(s => s.RelativeError);
    public double Top1Agreement => (double)Sequences.Sum(s => s.Top1Agreements) / Math.Max(1, Positions);

    public IReadOnlyList<string> Failures
    {
        get
        {
            var f = new List<string>();
            if (LlamaCppVocabSize != EngineVocabSize) f.Add($"llama.cpp sees {LlamaCppVocabSize} tokens, Engine {EngineVocabSize}");
            else if (!(MaxRelativeError <= Tolerance.MaxRelativeError))
                f.Add(string.Format(CultureInfo.InvariantCulture, "llama.cpp's logits differ from the weights as stored: max |Δlogit|/σ {0:E2} exceeds {1:G2}", MaxRelativeError, Tolerance.MaxRelativeError));
            return f;
        }
    }

    public bool Passed => Failures.Count == 0;
}

/// <summary>Quality of the quantization: llama.cpp on the file against Engine's forward of the source, over the held-out
/// text (the statistics of llama-perplexity --kl-divergence).</summary>
public sealed record QualityReport(int Positions, double KlMean, double KlP99, double Top1Agreement, double SourcePerplexity,
    double LlamaCppPerplexity, QualityLimits Limits)
{
    public double PerplexityRatio => LlamaCppPerplexity / SourcePerplexity;

    public IReadOnlyList<string> Failures
    {
        get
        {
            var f = new List<string>();
            if (Positions == 0) return f; // nothing compared: the faithfulness failure says why
            if (!(KlMean <= Limits.MaxKlMean)) f.Add(string.Format(CultureInfo.InvariantCulture, "KL mean {0:G3} exceeds {1:G2} (gross damage)", KlMean, Limits.MaxKlMean));
            if (!(PerplexityRatio <= Limits.MaxPerplexityRatio)) f.Add(string.Format(CultureInfo.InvariantCulture, "perplexity ratio {0:G4} exceeds {1:G2} (gross damage)", PerplexityRatio, Limits.MaxPerplexityRatio));
            return f;
        }
    }
}

/// <param name="LlamaCppOnCollapsed">llama.cpp's tokens for the text with runs of spaces collapsed and trimmed, when
/// the tokenizer does that itself (SentencePiece's remove_extra_whitespaces, which llama.cpp does not apply).</param>
/// <param name="EngineParsingSpecials">Engine's tokens with special tokens parsed, when the text holds a string
/// llama.cpp makes a control token by its text (<see cref="GgufValidator.LlamaCppControlTexts"/>)</param>
/// <param name="LlamaCppParsingSpecials">llama.cpp's tokens with special tokens parsed, likewise</param>
public sealed record TokenizerComparison(string Text, int[] Engine, int[] LlamaCpp, int[]? LlamaCppOnCollapsed = null,
    int[]? EngineParsingSpecials = null, int[]? LlamaCppParsingSpecials = null)
{
    public bool Agrees => Engine.SequenceEqual(LlamaCpp);
    /// <summary>Differs only because llama.cpp does not remove extra whitespace: on the collapsed text it agrees.</summary>
    public bool ExplainedByWhitespace => !Agrees && LlamaCppOnCollapsed != null && Engine.SequenceEqual(LlamaCppOnCollapsed);
    /// <summary>
    /// Differs only because llama.cpp turns a token such as <c>&lt;/s&gt;</c> into a control token by its text, whatever
    /// the file says (llama-vocab.cpp), and so leaves it as text when special tokens are not parsed, where the
    /// reference matches it as an ordinary added token (Gemma 3's vocabulary): with special tokens parsed both agree.
    /// </summary>
    public bool ExplainedByControlOverride => !Agrees && !ExplainedByWhitespace && EngineParsingSpecials != null
        && LlamaCppParsingSpecials != null && EngineParsingSpecials.SequenceEqual(LlamaCppParsingSpecials);
}

public enum ChatTemplateStatus
{
    /// <summary>llama.cpp renders exactly what Engine renders.</summary>
    Identical,
    /// <summary>Identical once Engine's leading BOS text is removed: llama.cpp's built-in templates leave BOS to the tokenizer.</summary>
    IdenticalWithoutBos,
    Differs,
    /// <summary>llama_chat_apply_template does not recognise the template (it knows the common ones by their markers).</summary>
    NotSupportedByLlamaCpp,
    /// <summary>Engine's Jinja interpreter cannot render the template; nothing to compare.</summary>
    NotRenderedByEngine,
}

/// <summary>A two-turn conversation rendered by the template in the GGUF, by Engine and by llama.cpp.</summary>
public sealed record ChatTemplateComparison(ChatTemplateStatus Status, string? Engine, string? LlamaCpp, string? Note = null)
{
    public bool Failed => Status == ChatTemplateStatus.Differs;
}

/// <summary>What llama.cpp made of an exported file: faithfulness (pass/fail), quality (reported, gross damage fails),
/// tokenizer agreement, the greedy continuation, and the chat template.</summary>
public sealed class ValidationReport
{
    public required GgufExportType Type { get; init; }
    public required string LlamaCppBuild { get; init; }
    public required FaithfulnessReport Faithfulness { get; init; }
    public required QualityReport Quality { get; init; }
    public required IReadOnlyList<TokenizerComparison> Tokenizer { get; init; }
    public required int[] GreedyPrompt { get; init; }
    public required int[] EngineGreedy { get; init; }
    public required int[] LlamaCppGreedy { get; init; }
    public ChatTemplateComparison? ChatTemplate { get; init; }

    public int TokenizerAgreements => Tokenizer.Count(t => t.Agrees);
    public int TokenizerWhitespaceDifferences => Tokenizer.Count(t => t.ExplainedByWhitespace);
    public int TokenizerControlOverrideDifferences => Tokenizer.Count(t => t.ExplainedByControlOverride);
    public int TokenizerUnexplainedDifferences => Tokenizer.Count - TokenizerAgreements - TokenizerWhitespaceDifferences - TokenizerControlOverrideDifferences;
    public int GreedyMatchingPrefix => EngineGreedy.Zip(LlamaCppGreedy).TakeWhile(p => p.First == p.Second).Count();

    public IReadOnlyList<string> Failures
    {
        get
        {
            var f = new List<string>(Faithfulness.Failures);
            f.AddRange(Quality.Failures);
            if (TokenizerUnexplainedDifferences > 0) f.Add($"llama.cpp tokenizes {TokenizerUnexplainedDifferences} of {Tokenizer.Count} test strings differently");
            if (ChatTemplate is { Failed: true }) f.Add("llama.cpp renders the chat template differently from Engine");
            return f;
        }
    }

    public bool Passed => Failures.Count == 0;

    public string Format()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        var fa = Faithfulness;
        sb.AppendLine($"llama.cpp validation ({GgufExportTypes.Name(Type)}; LLamaSharp, llama.cpp {LlamaCppBuild} CPU build, F32 KV cache, flash attention off):");
        sb.AppendLine(string.Format(ci, "  faithfulness (llama.cpp vs Engine's forward of the weights as stored): max |Δlogit|/σ {0:E2}, max |Δlogit| {1:E2}, top-1 {2}/{3}: {4}",
            fa.MaxRelativeError, fa.MaxAbsDiff, fa.Sequences.Sum(s => s.Top1Agreements), fa.Positions, fa.Passed ? "PASS" : "FAIL"));
        foreach (var s in fa.Sequences)
            sb.AppendLine(string.Format(ci, "    {0,-40} {1,3} tokens  max |Δ|/σ {2:E2}  max |Δ| {3:E2}  top-1 {4}/{1}", Quote(s.Label), s.Tokens, s.RelativeError, s.MaxAbsDiff, s.Top1Agreements));
        sb.AppendLine($"    tolerance: {fa.Tolerance}");
        var q = Quality;
        sb.AppendLine(string.Format(ci, "  quality vs the source model ({0} positions of held-out text): KL mean {1:E2}, KL p99 {2:E2}, top-1 {3:P1}, perplexity {4:F3} vs {5:F3} (ratio {6:F4})",
            q.Positions, q.KlMean, q.KlP99, q.Top1Agreement, q.LlamaCppPerplexity, q.SourcePerplexity, q.PerplexityRatio));
        sb.AppendLine($"    fails only on gross damage: {q.Limits}");
        sb.AppendLine($"  tokenizer: {TokenizerAgreements}/{Tokenizer.Count} test strings tokenized identically"
            + (TokenizerWhitespaceDifferences > 0 ? $"; {TokenizerWhitespaceDifferences} differ only by SentencePiece's extra-whitespace removal, which llama.cpp does not do (identical once spaces are collapsed)" : "")
            + (TokenizerControlOverrideDifferences > 0 ? $"; {TokenizerControlOverrideDifferences} differ only because llama.cpp makes tokens such as </s> control tokens by their text (identical with special tokens parsed)" : ""));
        foreach (var t in Tokenizer.Where(t => !t.Agrees && !t.ExplainedByWhitespace && !t.ExplainedByControlOverride))
            sb.AppendLine($"    {Quote(t.Text)}: Engine [{string.Join(",", t.Engine)}] llama.cpp [{string.Join(",", t.LlamaCpp)}]");
        sb.AppendLine($"  greedy continuation of the source ({EngineGreedy.Length} tokens): {GreedyMatchingPrefix}/{EngineGreedy.Length} identical"
            + (GreedyMatchingPrefix < EngineGreedy.Length ? $" (first difference at step {GreedyMatchingPrefix + 1})" : ""));
        sb.AppendLine($"    Engine    [{string.Join(",", EngineGreedy)}]");
        sb.AppendLine($"    llama.cpp [{string.Join(",", LlamaCppGreedy)}]");
        if (ChatTemplate is { } chat)
        {
            sb.AppendLine($"  chat template (two turns and the generation prompt): {Describe(chat.Status)}" + (chat.Note is null ? "" : $" ({chat.Note})"));
            if (chat.Failed)
            {
                sb.AppendLine($"    Engine    {Quote(chat.Engine ?? "", 200)}");
                sb.AppendLine($"    llama.cpp {Quote(chat.LlamaCpp ?? "", 200)}");
            }
        }
        sb.Append(Passed ? "  result: PASS" : "  result: FAIL (" + string.Join("; ", Failures) + ")");
        return sb.ToString();
    }

    static string Describe(ChatTemplateStatus s) => s switch
    {
        ChatTemplateStatus.Identical => "llama.cpp renders it identically",
        ChatTemplateStatus.IdenticalWithoutBos => "llama.cpp renders it identically (without the BOS text, which llama.cpp leaves to the tokenizer)",
        ChatTemplateStatus.Differs => "llama.cpp renders it DIFFERENTLY",
        ChatTemplateStatus.NotSupportedByLlamaCpp => "not checked: llama.cpp's built-in template support does not recognise it",
        _ => "not checked: Engine cannot render it",
    };

    /// <summary>The report as one JSON object (export --json).</summary>
    public JsonObject ToJson()
    {
        var fa = Faithfulness;
        var q = Quality;
        var json = new JsonObject
        {
            ["type"] = GgufExportTypes.Name(Type),
            ["validated"] = true,
            ["passed"] = Passed,
            ["failures"] = Strings(Failures),
            ["llama_cpp_build"] = LlamaCppBuild,
            ["faithfulness"] = new JsonObject
            {
                ["passed"] = fa.Passed,
                ["max_relative_error"] = Number(fa.MaxRelativeError),
                ["max_abs_logit_diff"] = Number(fa.MaxAbsDiff),
                ["top1_agreement"] = Number(fa.Top1Agreement),
                ["positions"] = fa.Positions,
                ["tolerance"] = new JsonObject
                {
                    ["max_relative_error"] = fa.Tolerance.MaxRelativeError,
                    ["activation_rounding"] = fa.Tolerance.Rounding.ToString(),
                    ["model_sensitivity"] = Number(fa.Tolerance.Sensitivity),
                },
                ["prompts"] = new JsonArray(fa.Sequences.Select(s => (JsonNode)new JsonObject
                {
                    ["prompt"] = s.Label,
                    ["tokens"] = s.Tokens,
                    ["max_relative_error"] = Number(s.RelativeError),
                    ["max_abs_logit_diff"] = Number(s.MaxAbsDiff),
                    ["top1_agreement"] = Number((double)s.Top1Agreements / Math.Max(1, s.Tokens)),
                }).ToArray()),
            },
            ["kl_mean"] = Number(q.KlMean),
            ["kl_p99"] = Number(q.KlP99),
            ["top1_agreement"] = Number(q.Top1Agreement),
            ["perplexity_ratio"] = Number(q.PerplexityRatio),
            ["quality"] = new JsonObject
            {
                ["positions"] = q.Positions,
                ["source_perplexity"] = Number(q.SourcePerplexity),
                ["llama_cpp_perplexity"] = Number(q.LlamaCppPerplexity),
                ["max_kl_mean"] = q.Limits.MaxKlMean,
                ["max_perplexity_ratio"] = q.Limits.MaxPerplexityRatio,
            },
            ["tokenizer"] = new JsonObject
            {
                ["strings"] = Tokenizer.Count,
                ["identical"] = TokenizerAgreements,
                ["whitespace_only_differences"] = TokenizerWhitespaceDifferences,
                ["control_override_differences"] = TokenizerControlOverrideDifferences,
                ["agrees"] = TokenizerUnexplainedDifferences == 0,
            },
            ["greedy"] = new JsonObject
            {
                ["steps"] = EngineGreedy.Length,
                ["identical_prefix"] = GreedyMatchingPrefix,
                ["agrees"] = GreedyMatchingPrefix == EngineGreedy.Length,
                ["engine"] = new JsonArray(EngineGreedy.Select(i => (JsonNode)i).ToArray()),
                ["llama_cpp"] = new JsonArray(LlamaCppGreedy.Select(i => (JsonNode)i).ToArray()),
            },
            ["chat_template"] = ChatTemplate is { } c ? new JsonObject
            {
                ["status"] = JsonNamingPolicy.SnakeCaseLower.ConvertName(c.Status.ToString()),
                ["engine"] = c.Engine,
                ["llama_cpp"] = c.LlamaCpp,
            } : null,
        };
        return json;
    }

    /// <summary>What export --json prints with --no-validate.</summary>
    public static JsonObject SkippedJson(GgufExportType type) => new() { ["type"] = GgufExportTypes.Name(type), ["validated"] = false };

    static JsonArray Strings(IEnumerable<string> values) => new(values.Select(v => (JsonNode)v).ToArray());

    /// <summary>JSON has no infinity or NaN: such values (a broken file) are written as null.</summary>
    static JsonNode? Number(double v) => double.IsFinite(v) ? v : null;

    static string Quote(string s, int max = 36)
    {
        string q = s.Replace("\n", "\\n").Replace("\t", "\\t");
        return "\"" + (q.Length > max ? q[..(max - 3)] + "..." : q) + "\"";
    }
}
