using System.Globalization;
using System.Text;
using Engine.Generation;
using Engine.Gguf.LlamaCpp;
using Engine.Models;
using Engine.Tokenization;
using static TorchSharp.torch;

namespace Engine.Gguf;

/// <summary>Pass/fail limits for one export type, as the export promises them.</summary>
public sealed record ValidationTolerance(double? MaxAbsLogitDiff, double MinTop1Agreement)
{
    /// <param name="activation">the model's MLP activation: ggml's CPU GELU reads an f16 table (GGML_GELU_FP16), so even
    /// an F32 file of a GeGLU model is computed at about f16 precision, and gets F16's limits</param>
    public static ValidationTolerance For(GgufExportType t, MlpActivation activation = MlpActivation.Silu) => t switch
    {
        GgufExportType.F32 when activation == MlpActivation.GeluTanh => new(2e-2, 0.99),
        GgufExportType.F32 => new(1e-4, 1.0),
        GgufExportType.F16 or GgufExportType.BF16 => new(2e-2, 0.99),
        GgufExportType.Q8_0 => new(null, 0.98),
        _ => new(null, 0.90),
    };

    public override string ToString() =>
        (MaxAbsLogitDiff is double d ? $"max |Δlogit| ≤ {d:G3}, " : "") + $"top-1 agreement ≥ {MinTop1Agreement:P0}";
}

public sealed record PromptComparison(string Prompt, int Tokens, double MaxAbsDiff, int Top1Agreements, double MaxAbsDiffVsFile, int Top1AgreementsVsFile);

/// <param name="LlamaCppOnCollapsed">llama.cpp's tokens for the text with runs of spaces collapsed and trimmed, when
/// the tokenizer does that itself (SentencePiece's remove_extra_whitespaces, which llama.cpp does not apply).</param>
public sealed record TokenizerComparison(string Text, int[] Engine, int[] LlamaCpp, int[]? LlamaCppOnCollapsed = null)
{
    public bool Agrees => Engine.SequenceEqual(LlamaCpp);
    /// <summary>Differs only because llama.cpp does not remove extra whitespace: on the collapsed text it agrees.</summary>
    public bool ExplainedByWhitespace => !Agrees && LlamaCppOnCollapsed != null && Engine.SequenceEqual(LlamaCppOnCollapsed);
}

/// <summary>What llama.cpp made of an exported file, next to Engine's own forward of the source model.</summary>
public sealed class ValidationReport
{
    public required GgufExportType Type { get; init; }
    public required ValidationTolerance Tolerance { get; init; }
    public required IReadOnlyList<PromptComparison> Prompts { get; init; }
    public required IReadOnlyList<TokenizerComparison> Tokenizer { get; init; }
    public required int[] GreedyPrompt { get; init; }
    public required int[] EngineGreedy { get; init; }
    public required int[] LlamaCppGreedy { get; init; }
    public required int LlamaCppVocabSize { get; init; }
    public required int EngineVocabSize { get; init; }

    public int Positions => Prompts.Sum(p => p.Tokens);
    public double MaxAbsDiff => Prompts.Max(p => p.MaxAbsDiff);
    public double MaxAbsDiffVsFile => Prompts.Max(p => p.MaxAbsDiffVsFile);
    public double Top1Agreement => (double)Prompts.Sum(p => p.Top1Agreements) / Math.Max(1, Positions);
    public int TokenizerAgreements => Tokenizer.Count(t => t.Agrees);
    public int TokenizerWhitespaceDifferences => Tokenizer.Count(t => t.ExplainedByWhitespace);
    public int GreedyMatchingPrefix => EngineGreedy.Zip(LlamaCppGreedy).TakeWhile(p => p.First == p.Second).Count();

    public IReadOnlyList<string> Failures
    {
        get
        {
            var f = new List<string>();
            if (LlamaCppVocabSize != EngineVocabSize) f.Add($"llama.cpp sees {LlamaCppVocabSize} tokens, Engine {EngineVocabSize}");
            if (Tolerance.MaxAbsLogitDiff is double d && !(MaxAbsDiff <= d)) f.Add($"max |Δlogit| {MaxAbsDiff:G3} exceeds {d:G3}");
            if (!(Top1Agreement >= Tolerance.MinTop1Agreement)) f.Add($"top-1 agreement {Top1Agreement:P1} is below {Tolerance.MinTop1Agreement:P0}");
            int unexplained = Tokenizer.Count - TokenizerAgreements - TokenizerWhitespaceDifferences;
            if (unexplained > 0) f.Add($"llama.cpp tokenizes {unexplained} of {Tokenizer.Count} test strings differently");
            return f;
        }
    }

    public bool Passed => Failures.Count == 0;

    public string Format()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"llama.cpp validation ({GgufExportTypes.Name(Type)}; F32 KV cache, flash attention off):");
        sb.AppendLine(string.Format(ci, "  logits vs Engine's forward of the source: max |Δ| {0:E2}, top-1 agreement {1}/{2} ({3:P1})",
            MaxAbsDiff, Prompts.Sum(p => p.Top1Agreements), Positions, Top1Agreement));
        sb.AppendLine(string.Format(ci, "  logits vs Engine's forward of the exported file: max |Δ| {0:E2}, top-1 agreement {1}/{2}",
            MaxAbsDiffVsFile, Prompts.Sum(p => p.Top1AgreementsVsFile), Positions));
        foreach (var p in Prompts)
            sb.AppendLine(string.Format(ci, "    {0,-40} {1,3} tokens  max |Δ| {2:E2}  top-1 {3}/{1}", Quote(p.Prompt), p.Tokens, p.MaxAbsDiff, p.Top1Agreements));
        sb.AppendLine($"  tokenizer: {TokenizerAgreements}/{Tokenizer.Count} test strings tokenized identically"
            + (TokenizerWhitespaceDifferences > 0 ? $"; {TokenizerWhitespaceDifferences} differ only by SentencePiece's extra-whitespace removal, which llama.cpp does not do (identical once spaces are collapsed)" : ""));
        foreach (var t in Tokenizer.Where(t => !t.Agrees && !t.ExplainedByWhitespace))
            sb.AppendLine($"    {Quote(t.Text)}: Engine [{string.Join(",", t.Engine)}] llama.cpp [{string.Join(",", t.LlamaCpp)}]");
        sb.AppendLine($"  greedy continuation ({EngineGreedy.Length} tokens): {GreedyMatchingPrefix}/{EngineGreedy.Length} identical"
            + (GreedyMatchingPrefix < EngineGreedy.Length ? $" (first difference at step {GreedyMatchingPrefix + 1})" : ""));
        sb.AppendLine($"    Engine    [{string.Join(",", EngineGreedy)}]");
        sb.AppendLine($"    llama.cpp [{string.Join(",", LlamaCppGreedy)}]");
        sb.AppendLine($"  tolerance: {Tolerance}");
        sb.Append(Passed ? "  result: PASS" : "  result: FAIL (" + string.Join("; ", Failures) + ")");
        return sb.ToString();
    }

    static string Quote(string s)
    {
        string q = s.Replace("\n", "\\n").Replace("\t", "\\t");
        return "\"" + (q.Length > 36 ? q[..33] + "..." : q) + "\"";
    }
}

/// <summary>
/// Loads an exported GGUF file in llama.cpp and compares it with Engine: logits at every position of several
/// prompts (against the source model and against Engine's own reading of the file), tokenization of test
/// strings, and a greedy continuation token by token.
/// </summary>
public static class GgufValidator
{
    public static readonly IReadOnlyList<string> DefaultPrompts = new[]
    {
        "Once upon a time, there was a little girl named Lily.",
        "The quick brown fox jumps over the lazy dog.",
        "Tom had 3 apples and 12 pears; he gave 2 away.",
        "\"Where are you going?\" asked the old man.\nShe smiled.",
    };

    public static readonly IReadOnlyList<string> TokenizerTestStrings = DefaultPrompts.Concat(new[]
    {
        "", " ", "  two leading spaces", "trailing space ", "multiple   spaces\tand\ttabs",
        "new\n\nlines\r\n", "Hello, World! 1234567890", "ünïcödé façade — naïve café",
        "日本語のテキスト", "emoji 🙂👍🏽", "don't won't I'm we'll", "<s> not special </s>",
    }).ToList();

    public const int GreedySteps = 16;

    public static ValidationReport Validate(LlamaForCausalLM source, TextTokenizer tokenizer, string exportedPath, GgufExportType type,
        IReadOnlyList<string>? prompts = null)
    {
        prompts ??= DefaultPrompts;
        var promptIds = prompts.Select(p => Ids(tokenizer, p)).ToList();
        int context = Math.Min(source.Config.MaxPositionEmbeddings, Math.Max(promptIds.Max(p => p.Length), promptIds[0].Length + GreedySteps) + 8);

        using var exported = ModelLoader.Load(exportedPath, ScalarType.Float32);
        using var llama = LlamaCppModel.Load(exportedPath, contextLength: context);
        var comparisons = new List<PromptComparison>();
        for (int i = 0; i < prompts.Count; i++)
        {
            var ids = promptIds[i];
            var reference = EngineLogits(source, ids);
            var fromFile = EngineLogits(exported.Model, ids);
            var actual = llama.Logits(ids);
            double maxDiff = 0, maxDiffFile = 0;
            int agree = 0, agreeFile = 0;
            for (int t = 0; t < ids.Length; t++)
            {
                maxDiff = Math.Max(maxDiff, MaxAbsDiff(reference[t], actual[t]));
                maxDiffFile = Math.Max(maxDiffFile, MaxAbsDiff(fromFile[t], actual[t]));
                if (LlamaCppModel.ArgMax(reference[t]) == LlamaCppModel.ArgMax(actual[t])) agree++;
                if (LlamaCppModel.ArgMax(fromFile[t]) == LlamaCppModel.ArgMax(actual[t])) agreeFile++;
            }
            comparisons.Add(new PromptComparison(prompts[i], ids.Length, maxDiff, agree, maxDiffFile, agreeFile));
        }

        bool collapses = GgufTokenizerMetadata.RemovesExtraWhitespace(tokenizer);
        var tokenizerChecks = TokenizerTestStrings
            .Select(s => new TokenizerComparison(s, tokenizer.Encode(s, addSpecial: true, parseSpecial: false), llama.Tokenize(s, addSpecial: true, parseSpecial: false),
                collapses ? llama.Tokenize(CollapseSpaces(s), addSpecial: true, parseSpecial: false) : null))
            .ToList();

        var greedyPrompt = promptIds[0];
        var engineGreedy = new TextGenerator(source, eosId: null)
            .Generate(new[] { greedyPrompt }, new SamplingOptions { MaxNewTokens = GreedySteps, Temperature = 0, StopAtEos = false })[0];
        var llamaGreedy = llama.Greedy(greedyPrompt, GreedySteps);

        return new ValidationReport
        {
            Type = type,
            Tolerance = ValidationTolerance.For(type, source.Config.Activation),
            Prompts = comparisons,
            Tokenizer = tokenizerChecks,
            GreedyPrompt = greedyPrompt,
            EngineGreedy = engineGreedy,
            LlamaCppGreedy = llamaGreedy,
            LlamaCppVocabSize = llama.VocabSize,
            EngineVocabSize = source.Config.VocabSize,
        };
    }

    /// <summary>SentencePiece's remove_extra_whitespaces on U+0020: trimmed, runs of spaces become one.</summary>
    static string CollapseSpaces(string s) =>
        string.Join(' ', s.Split(' ', StringSplitOptions.RemoveEmptyEntries));

    static int[] Ids(TextTokenizer tokenizer, string text)
    {
        var ids = tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
        if (ids.Length == 0 && tokenizer.BosId is int bos) ids = new[] { bos };
        if (ids.Length == 0) throw new EngineException($"the tokenizer produced no tokens for the validation prompt \"{text}\"");
        return ids;
    }

    static float[][] EngineLogits(LlamaForCausalLM model, int[] ids)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Length });
        var logits = model.Forward(input).to(ScalarType.Float32)[0].contiguous();
        var flat = logits.data<float>().ToArray();
        int vocab = (int)logits.shape[1];
        return Enumerable.Range(0, ids.Length).Select(t => flat.AsSpan(t * vocab, vocab).ToArray()).ToArray();
    }

    static double MaxAbsDiff(float[] a, float[] b)
    {
        if (a.Length != b.Length) return double.PositiveInfinity;
        double m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(d)) return double.PositiveInfinity;
            if (d > m) m = d;
        }
        return m;
    }
}
