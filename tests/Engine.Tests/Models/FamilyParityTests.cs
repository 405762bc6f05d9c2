using System.Text.Json.Nodes;
using Engine.Generation;
using Engine.Models;
using Engine.Tests.Infrastructure;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Engine.Tests.Models;

/// <summary>
/// Each family's small random-weight HF folder (<see cref="FamilyModels"/>) loaded by Engine: the parsed config is the one
/// the test wrote, the forward equals the plain-loop double reference, cached decoding equals recomputing from scratch,
/// and a save/reload keeps the family's config keys and the logits.
/// </summary>
public class FamilyParityTests
{
    readonly ITestOutputHelper _out;
    public FamilyParityTests(ITestOutputHelper output) => _out = output;

    public static TheoryData<string> Families => new(FamilyModels.All);

    static float[] Logits(LlamaForCausalLM model, int[] ids)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var input = tensor(ids.Select(i => (long)i).ToArray(), new long[] { 1, ids.Length });
        return model.Forward(input)[0].contiguous().data<float>().ToArray();
    }

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void ForwardEqualsTheDoubleReference(string family)
    {
        var m = FamilyModels.Get(family);
        using var model = FamilyModels.LoadModel(m.Directory);
        Assert.Equal(m.Spec, model.Config);
        var actual = Logits(model, m.Prompt);
        var expected = new NaiveLlamaReference(m.Spec, model).Forward(m.Prompt);
        int vocab = m.Spec.VocabSize;
        double maxDiff = 0, maxLogit = 0;
        for (int t = 0; t < m.Prompt.Length; t++)
            for (int v = 0; v < vocab; v++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(actual[t * vocab + v] - expected[t][v]));
                maxLogit = Math.Max(maxLogit, Math.Abs(expected[t][v]));
            }
        _out.WriteLine($"{family}: {m.Prompt.Length} positions × {vocab} logits, max |Δ| vs double reference {maxDiff:E2} (max |logit| {maxLogit:F2})");
        Assert.True(maxDiff < 1e-5, $"{family}: max |Δ| {maxDiff:E3} vs the double reference");
        Assert.True(maxLogit > 1, $"{family}: logits are too small ({maxLogit}) for the comparison to mean much");
    }

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void CachedGreedyDecodingEqualsRecomputingEachPrefix(string family)
    {
        var m = FamilyModels.Get(family);
        using var model = FamilyModels.LoadModel(m.Directory);
        const int steps = 12;
        var generated = new TextGenerator(model, eosId: null)
            .Generate(new[] { m.Prompt }, new SamplingOptions { MaxNewTokens = steps, Temperature = 0, StopAtEos = false })[0];
        Assert.Equal(steps, generated.Length);
        var seq = m.Prompt.ToList();
        int vocab = m.Spec.VocabSize;
        foreach (var next in generated)
        {
            var logits = Logits(model, seq.ToArray()).AsSpan((seq.Count - 1) * vocab, vocab);
            int argmax = 0;
            for (int i = 1; i < vocab; i++) if (logits[i] > logits[argmax]) argmax = i;
            Assert.Equal(argmax, next);
            seq.Add(next);
        }
    }

    [SkippableFact]
    public void GemmaCacheKeepsOnlyTheWindowInSlidingLayersAndStaysExact()
    {
        var m = FamilyModels.Get(FamilyModels.Gemma3);
        using var model = FamilyModels.LoadModel(m.Directory);
        int window = m.Spec.SlidingWindow!.Value, length = m.Prompt.Length;
        using (var cache = new KvCache(m.Spec, 1, length + 8, ScalarType.Float32))
        {
            // Layer 5 is global and keeps every position; the others keep a ring of one window.
            Assert.Equal(Enumerable.Range(0, 6).Select(i => i == 5 ? (long)length + 8 : window), Enumerable.Range(0, 6).Select(cache.SlotsOf));
            // The prompt in two chunks (the second longer than the window, with a filled ring before it) ends as one pass does.
            using var _ = no_grad();
            var first = tensor(m.Prompt.Take(10).Select(i => (long)i).ToArray(), new long[] { 1, 10 });
            var second = tensor(m.Prompt.Skip(10).Select(i => (long)i).ToArray(), new long[] { 1, length - 10 });
            model.Forward(first, cache: cache).Dispose();
            using var chunked = model.Forward(second, cache: cache);
            var whole = Logits(model, m.Prompt);
            int vocab = m.Spec.VocabSize;
            var last = chunked[0, length - 11].data<float>().ToArray();
            double diff = last.Select((v, i) => Math.Abs(v - whole[(length - 1) * vocab + i])).Max();
            Assert.True(diff < 1e-5, $"chunked prefill differs by {diff}");
        }
        // Batched decoding with left padding: each row decodes as it does alone.
        var prompts = new[] { m.Prompt, m.Prompt.Skip(9).ToArray() };
        var options = new SamplingOptions { MaxNewTokens = 10, Temperature = 0, StopAtEos = false };
        var batched = new TextGenerator(model, eosId: null).Generate(prompts, options);
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(new TextGenerator(model, eosId: null).Generate(new[] { prompts[i] }, options)[0], batched[i]);
    }

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void SavedCheckpointKeepsTheFamilysConfigAndLogits(string family)
    {
        var m = FamilyModels.Get(family);
        using var tmp = new TempDir();
        using var loaded = ModelLoader.Load(m.Directory, requireTokenizer: true);
        string saved = tmp.File("saved");
        ModelLoader.Save(loaded.Model, loaded.Tokenizer, saved, ScalarType.Float32);
        var written = JsonNode.Parse(File.ReadAllText(Path.Combine(saved, "config.json")))!.AsObject();
        var original = JsonNode.Parse(File.ReadAllText(m.ConfigPath))!.AsObject();
        Assert.Equal(original["model_type"]!.GetValue<string>(), written["model_type"]!.GetValue<string>());
        Assert.Equal(original["architectures"]!.ToJsonString(), written["architectures"]!.ToJsonString());
        // Every key Engine writes is one the family's HF config class knows: the source config (written as the
        // published checkpoints are) has it too, except head_dim, which HF accepts for every family.
        foreach (var (key, _) in written)
            Assert.True(original.ContainsKey(key) || key is "head_dim" or "mlp_bias" or "attention_bias" or "layer_types" or "rope_scaling"
                or "pad_token_id" or "attention_dropout" or "sliding_window" or "use_sliding_window" or "max_window_layers",
                $"{family}: Engine wrote '{key}', which the family's config does not have");
        using var back = ModelLoader.Load(saved, requireTokenizer: true);
        Assert.Equal(m.Spec, back.Config);
        Assert.Equal(Logits(loaded.Model, m.Prompt), Logits(back.Model, m.Prompt));
    }
}
