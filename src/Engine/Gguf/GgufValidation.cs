using Engine.Adapters;
using Engine.Data;
using Engine.Data.ChatTemplates;
using Engine.Generation;
using Engine.Gguf.LlamaCpp;
using Engine.Models;
using Engine.Tokenization;
using static TorchSharp.torch;

namespace Engine.Gguf;

/// <summary>
/// Loads an exported GGUF file in llama.cpp and checks it against Engine, in two parts. Faithfulness (pass/fail):
/// llama.cpp's logits at every position of fixed prompts and a held-out text against Engine's forward of the weights
/// as stored (<see cref="GgufStoredWeights"/>), within <see cref="FaithfulnessTolerance"/>. Quality (reported; only
/// gross damage fails): against Engine's forward of the source, KL divergence, top-1 agreement and the perplexity
/// ratio on the held-out text. Also tokenizer agreement, a greedy continuation and the chat template. Nothing here
/// depends on the architecture: models come from <see cref="ModelLoader"/>, and llama.cpp reads the file as it is.
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

    /// <summary>Text for the quality statistics, written for this check (so no model was trained on it).</summary>
    public const string HeldOutText =
        "One rainy morning, a small dog named Pip found a red ball under the old bench in the park. He wanted to show it "
        + "to his friend Sam, so he ran all the way to the big tree by the pond. Sam was sad because his kite was stuck in "
        + "the branches. Pip dropped the ball and barked at the tree. A kind girl heard the noise and came to help. She "
        + "climbed up slowly, took the kite, and gave it back to Sam. Sam smiled and said thank you. Then the three friends "
        + "played with the ball and the kite until the sun came out, and they were very happy.";

    /// <summary>The held-out text is cut to this many tokens (memory stays small even for a 256K-token vocabulary).</summary>
    public const int MaxQualityTokens = 192;

    public static readonly IReadOnlyList<string> TokenizerTestStrings = DefaultPrompts.Concat(new[]
    {
        "", " ", "  two leading spaces", "trailing space ", "multiple   spaces\tand\ttabs",
        "new\n\nlines\r\n", "Hello, World! 1234567890", "ünïcödé façade — naïve café",
        "日本語のテキスト", "emoji 🙂👍🏽", "don't won't I'm we'll", "<s> not special </s>",
    }).ToList();

    /// <summary>The conversation rendered for the chat-template check: two turns, then the generation prompt.</summary>
    public static readonly IReadOnlyList<ChatTurn> ChatConversation = new[]
    {
        new ChatTurn("user", "Hello! Can you tell me a short story?"),
        new ChatTurn("assistant", "Of course. Once upon a time, a little cat found a warm spot in the sun."),
        new ChatTurn("user", "What happened next?"),
    };

    public const int GreedySteps = 16;

    /// <summary>Token texts llama.cpp's vocabulary loader makes control tokens whatever the file says (its end-of-generation
    /// list in llama-vocab.cpp), so that without special parsing it leaves them as text.</summary>
    public static readonly IReadOnlyList<string> LlamaCppControlTexts = new[]
    {
        "</s>", "<eos>", "<end_of_turn>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<|end_of_text|>", "<EOT>",
    };

    /// <param name="adapter">a llama.cpp LoRA adapter GGUF that llama.cpp applies on top of <paramref name="exportedPath"/>, and
    /// the adapters it was written from, which Engine applies to the stored weights; the source is the base with them attached</param>
    public static ValidationReport Validate(LlamaForCausalLM source, TextTokenizer tokenizer, string exportedPath, GgufExportType type,
        IReadOnlyList<string>? prompts = null, AppliedAdapter? adapter = null)
    {
        var reference = ValidationReference.Compute(source, tokenizer, exportedPath, type, prompts ?? DefaultPrompts, adapter?.Adapters);
        var greedyPrompt = reference.Sequences[0].Ids;
        using var llama = LlamaCppModel.Load(exportedPath, contextLength: Math.Max(reference.ContextLength, greedyPrompt.Length + GreedySteps + 8),
            loraAdapter: adapter?.GgufPath);
        var (faithfulness, quality) = reference.Compare(llama);

        bool collapses = GgufTokenizerMetadata.RemovesExtraWhitespace(tokenizer);
        var tokenizerChecks = TokenizerTestStrings
            .Select(s =>
            {
                bool controlText = LlamaCppControlTexts.Any(c => s.Contains(c, StringComparison.Ordinal));
                return new TokenizerComparison(s, tokenizer.Encode(s, addSpecial: true, parseSpecial: false), llama.Tokenize(s, addSpecial: true, parseSpecial: false),
                    collapses ? llama.Tokenize(CollapseSpaces(s), addSpecial: true, parseSpecial: false) : null,
                    controlText ? tokenizer.Encode(s, addSpecial: true, parseSpecial: true) : null,
                    controlText ? llama.Tokenize(s, addSpecial: true, parseSpecial: true) : null);
            })
            .ToList();

        var engineGreedy = new TextGenerator(source, eosId: null)
            .Generate(new[] { greedyPrompt }, new SamplingOptions { MaxNewTokens = GreedySteps, Temperature = 0, StopAtEos = false })[0];
        var llamaGreedy = llama.Greedy(greedyPrompt, GreedySteps);

        return new ValidationReport
        {
            Type = type,
            LlamaCppBuild = LlamaCppRuntime.CpuLevel,
            Faithfulness = faithfulness,
            Quality = quality,
            Tokenizer = tokenizerChecks,
            GreedyPrompt = greedyPrompt,
            EngineGreedy = engineGreedy,
            LlamaCppGreedy = llamaGreedy,
            ChatTemplate = CompareChatTemplate(tokenizer, llama),
        };
    }

    /// <summary>Only the faithfulness part (no tokenizer, greedy or chat checks).</summary>
    public static FaithfulnessReport CheckFaithfulness(LlamaForCausalLM source, TextTokenizer tokenizer, string exportedPath, GgufExportType type) =>
        PrepareFaithfulness(source, tokenizer, exportedPath, type).Check(exportedPath);

    /// <summary>
    /// Engine's side of the faithfulness check, computed once from the source and <paramref name="exportedPath"/>'s
    /// tensor types; <see cref="ValidationReference.Check"/> then runs llama.cpp on that file or on any other file
    /// that should hold the same weights in the same types (a damaged copy, say).
    /// </summary>
    public static ValidationReference PrepareFaithfulness(LlamaForCausalLM source, TextTokenizer tokenizer, string exportedPath, GgufExportType type) =>
        ValidationReference.Compute(source, tokenizer, exportedPath, type, DefaultPrompts);

    internal sealed record Sequence(string Label, int[] Ids, bool HeldOut);

    internal static List<Sequence> Sequences(LlamaForCausalLM source, TextTokenizer tokenizer, IReadOnlyList<string> prompts)
    {
        int maxTokens = source.Config.MaxPositionEmbeddings;
        var list = prompts.Select(p => new Sequence(p, Ids(tokenizer, p, maxTokens), false)).ToList();
        list.Add(new Sequence("held-out text", Ids(tokenizer, HeldOutText, Math.Min(maxTokens, MaxQualityTokens)), true));
        return list;
    }

    /// <summary>The chat-template check: null when the tokenizer has no template.</summary>
    public static ChatTemplateComparison? CompareChatTemplate(TextTokenizer tokenizer, LlamaCppModel llama)
    {
        if (tokenizer.ChatTemplate is not { Length: > 0 }) return null;
        string engine;
        try
        {
            engine = ChatRendering.ForTokenizer(tokenizer, "the model's chat template")!.Render(ChatConversation, addGenerationPrompt: true);
        }
        catch (EngineException e)
        {
            return new ChatTemplateComparison(ChatTemplateStatus.NotRenderedByEngine, null, null, e.Message);
        }
        var rendered = llama.ApplyChatTemplate(ChatConversation.Select(t => (t.Role, t.Content)).ToList(), addAssistant: true);
        if (rendered is null) return new ChatTemplateComparison(ChatTemplateStatus.NotSupportedByLlamaCpp, engine, null);
        if (rendered == engine) return new ChatTemplateComparison(ChatTemplateStatus.Identical, engine, rendered);
        if (tokenizer.SpecialTokenStrings.TryGetValue("bos_token", out var bos) && bos is { Length: > 0 }
            && engine.StartsWith(bos, StringComparison.Ordinal) && engine[bos.Length..] == rendered)
            return new ChatTemplateComparison(ChatTemplateStatus.IdenticalWithoutBos, engine, rendered);
        return new ChatTemplateComparison(ChatTemplateStatus.Differs, engine, rendered);
    }

    /// <summary>SentencePiece's remove_extra_whitespaces on U+0020: trimmed, runs of spaces become one.</summary>
    static string CollapseSpaces(string s) =>
        string.Join(' ', s.Split(' ', StringSplitOptions.RemoveEmptyEntries));

    static int[] Ids(TextTokenizer tokenizer, string text, int maxTokens)
    {
        var ids = tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
        if (ids.Length == 0 && tokenizer.BosId is int bos) ids = new[] { bos };
        if (ids.Length == 0) throw new EngineException($"the tokenizer produced no tokens for the validation text \"{text}\"");
        return ids.Length > maxTokens ? ids[..maxTokens] : ids;
    }

    internal static float[][] EngineLogits(LlamaForCausalLM model, int[] ids)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Length });
        var logits = model.Forward(input).to(ScalarType.Float32)[0].contiguous();
        var flat = logits.data<float>().ToArray();
        int vocab = (int)logits.shape[1];
        return Enumerable.Range(0, ids.Length).Select(t => flat.AsSpan(t * vocab, vocab).ToArray()).ToArray();
    }
}

/// <summary>
/// Engine's logits for the validation sequences: of the weights as stored in the file's types (faithfulness), with
/// the model's sensitivity to rounding (the tolerance), and of the source over the held-out text (quality).
/// </summary>
public sealed class ValidationReference
{
    readonly GgufExportType _type;
    readonly int _vocabSize;
    readonly FaithfulnessTolerance _tolerance;
    readonly float[][][] _stored;
    readonly float[][][] _source;
    internal IReadOnlyList<GgufValidator.Sequence> Sequences { get; }
    internal int ContextLength => Sequences.Max(s => s.Ids.Length) + 8;

    ValidationReference(GgufExportType type, int vocabSize, FaithfulnessTolerance tolerance, IReadOnlyList<GgufValidator.Sequence> sequences, float[][][] stored, float[][][] source)
    {
        _type = type; _vocabSize = vocabSize; _tolerance = tolerance; Sequences = sequences; _stored = stored; _source = source;
    }

    internal static ValidationReference Compute(LlamaForCausalLM source, TextTokenizer tokenizer, string exportedPath, GgufExportType type, IReadOnlyList<string> prompts,
        LoraAdapters? adapters = null)
    {
        var sequences = GgufValidator.Sequences(source, tokenizer, prompts);
        var types = GgufStoredWeights.TensorTypes(exportedPath);
        var rounding = types.Values.Select(FaithfulnessTolerance.For).Append(FaithfulnessTolerance.For(source.Config.Activation)).Max();
        using var stored = GgufStoredWeights.Build(source, types, exportedPath, ScalarType.Float32);
        // The model's own sensitivity to rounding (see FaithfulnessTolerance); F32 files need none.
        using var storedBf16 = rounding == ActivationRounding.None ? null : GgufStoredWeights.Build(source, types, exportedPath, ScalarType.BFloat16);
        // An adapter llama.cpp applies on top of the file is applied to the stored weights here too.
        using var storedAdapters = adapters?.CopyTo(stored);
        using var storedBf16Adapters = storedBf16 is null ? null : adapters?.CopyTo(storedBf16);
        storedBf16Adapters?.ConvertTo(ScalarType.BFloat16);
        double sensitivity = 0;
        var storedLogits = new float[sequences.Count][][];
        var sourceLogits = new float[sequences.Count][][];
        for (int i = 0; i < sequences.Count; i++)
        {
            var ids = sequences[i].Ids;
            storedLogits[i] = GgufValidator.EngineLogits(stored, ids);
            if (storedBf16 != null)
            {
                var rounded = GgufValidator.EngineLogits(storedBf16, ids);
                for (int t = 0; t < ids.Length; t++)
                    sensitivity = Math.Max(sensitivity, LogitStatistics.MaxAbsDiff(storedLogits[i][t], rounded[t]) / Math.Max(LogitStatistics.Spread(storedLogits[i][t]), 1e-30));
            }
            sourceLogits[i] = sequences[i].HeldOut ? GgufValidator.EngineLogits(source, ids) : Array.Empty<float[]>();
        }
        return new ValidationReference(type, source.Config.VocabSize, FaithfulnessTolerance.For(rounding, sensitivity), sequences, storedLogits, sourceLogits);
    }

    /// <summary>Loads <paramref name="file"/> in llama.cpp and checks its faithfulness against this reference.</summary>
    public FaithfulnessReport Check(string file)
    {
        using var llama = LlamaCppModel.Load(file, contextLength: ContextLength);
        return Compare(llama).Faithfulness;
    }

    internal (FaithfulnessReport Faithfulness, QualityReport Quality) Compare(LlamaCppModel llama)
    {
        var comparisons = new List<SequenceComparison>();
        var kl = new List<double>();
        int qualityTop1 = 0, predicted = 0;
        double nllSource = 0, nllLlama = 0;
        bool vocabMatches = llama.VocabSize == _vocabSize;
        for (int i = 0; i < Sequences.Count; i++)
        {
            var (label, ids, heldOut) = Sequences[i];
            if (!vocabMatches) { comparisons.Add(new SequenceComparison(label, ids.Length, double.PositiveInfinity, double.PositiveInfinity, 0)); continue; }
            var actual = llama.Logits(ids);
            var expected = _stored[i];
            double maxDiff = 0, maxRelative = 0;
            int agree = 0;
            for (int t = 0; t < ids.Length; t++)
            {
                double d = LogitStatistics.MaxAbsDiff(expected[t], actual[t]);
                maxDiff = Math.Max(maxDiff, d);
                maxRelative = Math.Max(maxRelative, d / Math.Max(LogitStatistics.Spread(expected[t]), 1e-30));
                if (LogitStatistics.ArgMax(expected[t]) == LogitStatistics.ArgMax(actual[t])) agree++;
            }
            comparisons.Add(new SequenceComparison(label, ids.Length, maxDiff, maxRelative, agree));
            if (!heldOut) continue;

            // Quality: the statistics of llama-perplexity --kl-divergence, with Engine's forward of the source as the base.
            var reference = _source[i];
            for (int t = 0; t < ids.Length; t++)
            {
                var logP = LogitStatistics.LogSoftmax(reference[t]);
                var logQ = LogitStatistics.LogSoftmax(actual[t]);
                kl.Add(LogitStatistics.KlDivergence(logP, logQ));
                if (LogitStatistics.ArgMax(reference[t]) == LogitStatistics.ArgMax(actual[t])) qualityTop1++;
                if (t + 1 < ids.Length)
                {
                    nllSource -= logP[ids[t + 1]];
                    nllLlama -= logQ[ids[t + 1]];
                    predicted++;
                }
            }
        }
        var faithfulness = new FaithfulnessReport
        {
            Type = _type,
            Tolerance = _tolerance,
            Sequences = comparisons,
            LlamaCppVocabSize = llama.VocabSize,
            EngineVocabSize = _vocabSize,
        };
        var quality = kl.Count == 0
            ? new QualityReport(0, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN, QualityLimits.GrossDamage)
            : new QualityReport(kl.Count, kl.Average(), LogitStatistics.Percentile(kl, 0.99), (double)qualityTop1 / kl.Count,
                Math.Exp(nllSource / Math.Max(1, predicted)), Math.Exp(nllLlama / Math.Max(1, predicted)), QualityLimits.GrossDamage);
        return (faithfulness, quality);
    }
}

/// <summary>A llama.cpp LoRA adapter file and the adapters it was written from (validation of an adapter export).</summary>
public sealed record AppliedAdapter(string GgufPath, LoraAdapters Adapters);
