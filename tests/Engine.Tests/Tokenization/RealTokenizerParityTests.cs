using System.Text;
using CsCheck;
using Engine.Tokenization;

namespace Engine.Tests.Tokenization;

/// <summary>
/// Engine's tokenizers for Qwen3, Llama 3, Mistral v0.1 and Gemma 3 against Hugging Face's Rust tokenizers: ids with
/// and without the post-processor's special tokens, and decoding with and without skipping special tokens, over a
/// broad corpus and over random strings.
/// </summary>
public class RealTokenizerParityTests
{
    static string Show(string s) => s.Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r");

    /// <summary>The differences between Engine and the oracle on one text (empty when they agree).</summary>
    static List<string> Differences(TextTokenizer engine, HfOracle oracle, string text)
    {
        var problems = new List<string>();
        var expected = oracle.Encode(text);
        var actual = engine.Encode(text);
        if (!actual.SequenceEqual(expected))
            problems.Add($"[{Show(text)}] ids: Engine {string.Join(",", actual)} vs HF {string.Join(",", expected)}");
        var expectedBare = oracle.Encode(text, addSpecial: false);
        var actualBare = engine.Encode(text, addSpecial: false);
        if (!actualBare.SequenceEqual(expectedBare))
            problems.Add($"[{Show(text)}] ids without special tokens: Engine {string.Join(",", actualBare)} vs HF {string.Join(",", expectedBare)}");
        foreach (bool skip in new[] { true, false })
        {
            string want = oracle.Decode(expected, skip), got = engine.Decode(expected, skip);
            if (want != got) problems.Add($"[{Show(text)}] decode (skip special {skip}): Engine [{Show(got)}] vs HF [{Show(want)}]");
        }
        return problems;
    }

    static void AssertSame(TextTokenizer engine, HfOracle oracle, string text)
    {
        var problems = Differences(engine, oracle, text);
        if (problems.Count > 0) throw new Xunit.Sdk.XunitException(string.Join("\n", problems));
    }

    [SkippableTheory]
    [MemberData(nameof(RealTokenizers.All), MemberType = typeof(RealTokenizers))]
    public void CorpusEncodesAndDecodesLikeHuggingFace(string name)
    {
        var engine = RealTokenizers.Engine(name);
        var oracle = RealTokenizers.Oracle(name);
        var problems = TokenizerCorpus.Texts.SelectMany(t => Differences(engine, oracle, t)).ToList();
        Assert.True(problems.Count == 0, $"{name}: {problems.Count} differences:\n" + string.Join("\n", problems.Take(20)));
        // The corpus is not trivially tokenized: it reaches hundreds of distinct tokens, special ones among them.
        var ids = TokenizerCorpus.Texts.SelectMany(t => engine.Encode(t)).ToHashSet();
        Assert.True(ids.Count > 400, $"{name}: only {ids.Count} distinct ids");
        Assert.Contains(ids, engine.IsSpecial);
    }

    [SkippableTheory]
    [MemberData(nameof(RealTokenizers.All), MemberType = typeof(RealTokenizers))]
    public void RandomJoinsOfFragmentsMatchHuggingFace(string name)
    {
        var engine = RealTokenizers.Engine(name);
        var oracle = RealTokenizers.Oracle(name);
        Gen.OneOf(TokenizerCorpus.Fragments).Array[0, 14].Select(string.Concat)
            .Sample(text => AssertSame(engine, oracle, text), iter: 400, threads: 1);
    }

    /// <summary>Code points from assigned ranges of many scripts, spaces, marks and astral planes.</summary>
    static readonly Gen<string> CodePointStrings = Gen.OneOf(
            Gen.Int[0x20, 0x7E], Gen.Int[0x20, 0x7E], Gen.Int[0x20, 0x7E], Gen.OneOf(new[] { 0x09, 0x0A, 0x0D, 0x20, 0x20, 0xA0, 0x3000, 0x2028 }),
            Gen.Int[0xA1, 0x17F], Gen.Int[0x300, 0x36F], Gen.Int[0x391, 0x3C9], Gen.Int[0x410, 0x44F], Gen.Int[0x5D0, 0x5EA],
            Gen.Int[0x621, 0x64A], Gen.Int[0x905, 0x939], Gen.Int[0xE01, 0xE3A], Gen.Int[0x3041, 0x3096], Gen.Int[0x4E00, 0x9FA5],
            Gen.Int[0xAC00, 0xD7A3], Gen.Int[0xFF01, 0xFF5E], Gen.Int[0x1F300, 0x1F64F], Gen.Int[0x1F900, 0x1F9FF],
            Gen.Int[0x20000, 0x2A6DF], Gen.Int[0x1D400, 0x1D6A5], Gen.OneOf(new[] { 0x200D, 0xFE0F, 0x1F3FD }))
        .Array[0, 24]
        .Select(cps => string.Concat(cps.Select(char.ConvertFromUtf32)));

    [SkippableTheory]
    [MemberData(nameof(RealTokenizers.All), MemberType = typeof(RealTokenizers))]
    public void RandomCodePointsMatchHuggingFace(string name)
    {
        var engine = RealTokenizers.Engine(name);
        var oracle = RealTokenizers.Oracle(name);
        CodePointStrings.Sample(text => AssertSame(engine, oracle, text), iter: 400, threads: 1);
    }

    [SkippableTheory]
    [MemberData(nameof(RealTokenizers.All), MemberType = typeof(RealTokenizers))]
    public void DecodingRoundTripsTheTextUpToNormalization(string name)
    {
        var engine = RealTokenizers.Engine(name);
        var specials = Enumerable.Range(0, engine.VocabSize).Where(engine.IsSpecial).Select(id => engine.Tokens[id]).ToList();
        // Special-token strings are dropped by decoding, and a literal "▁" comes back as a space from SentencePiece-style BPE.
        var texts = TokenizerCorpus.Texts.Where(t => !specials.Any(t.Contains) && !(engine.Kind == TokenizerKind.SentencePieceBpe && t.Contains('\u2581'))).ToList();
        Assert.True(texts.Count > 80, $"only {texts.Count} corpus texts are free of special tokens");
        foreach (var text in texts)
        {
            // Qwen3 composes to NFC before encoding.
            string expected = name == "qwen3" ? text.Normalize(NormalizationForm.FormC) : text;
            Assert.Equal(expected, engine.Decode(engine.Encode(text)));
        }
    }
}
