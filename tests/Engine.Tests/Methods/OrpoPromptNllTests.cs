using Engine.Data;
using Engine.Kernels;
using Engine.Methods;
using Engine.Models;
using Engine.Objectives;
using static Engine.Tests.Objectives.Hand;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Tests.Methods;

/// <summary>
/// ORPO's NLL covers prompt + chosen, as TRL's ORPOTrainer.concatenated_forward computes it ("orpo chosen nll loss
/// is computed over the full prompt and response"): cross-entropy over every non-padding label of the chosen rows,
/// labels = input_ids where attention_mask == 1, shifted by one. The odds ratio stays on the completions
/// (get_batch_logps with the prompt masked).
/// </summary>
public class OrpoPromptNllTests
{
    static LlamaForCausalLM TinyModel()
    {
        var model = new LlamaForCausalLM(new LlamaConfig
        {
            HiddenSize = 32, IntermediateSize = 64, NumLayers = 1, NumHeads = 4, NumKvHeads = 2, HeadDim = 8, VocabSize = 64,
            MaxPositionEmbeddings = 64, RmsNormEps = 1e-5, RopeTheta = 10000,
        });
        model.InitializeWeights(11);
        return model;
    }

    // Two pairs with prompts of different lengths, so padding and prompt positions both occur.
    static readonly int[][] Prompts = { [1, 5, 6, 7], [1, 8] };
    static readonly int[][] Chosen = { [9, 10, 2], [11, 12, 13, 2] };
    static readonly int[][] Rejected = { [14, 2], [15, 16, 2] };

    static PairedBatch Batch()
    {
        var pairs = Enumerable.Range(0, 2).Select(i => new TokenizedPair(Prompts[i], Chosen[i], Rejected[i])).ToList();
        return new PairedBatchIterator(pairs, microBatchSize: 2, seed: 0, padId: 0, shuffle: false).Batches(1).Single();
    }

    /// <summary>log p(token t | tokens before t) from the full logits (a plain log_softmax over the vocabulary).</summary>
    static double[,] TokenLogps(LlamaForCausalLM model, SequenceBatch b)
    {
        using var noGrad = no_grad();
        var lp = F.log_softmax(model.Forward(b.InputIds).to(ScalarType.Float64), -1);
        var ids = b.InputIds.data<long>().ToArray();
        var result = new double[b.Rows, b.Length];
        for (int r = 0; r < b.Rows; r++)
            for (int t = 1; t < b.Length; t++)
                result[r, t] = lp[r, t - 1, ids[r * b.Length + t]].item<double>();
        return result;
    }

    [Theory]
    [InlineData(LogProbMode.Naive)]
    [InlineData(LogProbMode.Fused)]
    [InlineData(LogProbMode.Chunked)]
    public void The_scorer_returns_the_prompt_tokens_of_the_rows_asked_for(LogProbMode head)
    {
        using var model = TinyModel();
        using var batch = Batch();
        using var scope = NewDisposeScope();
        var lp = TokenLogps(model, batch.Sequences);
        var (completions, prompts) = SequenceScorer.ScoreWithPrompts(model, batch.Sequences, head, 0, 2);
        // Rows 0, 1 are prompt + chosen; 2, 3 prompt + rejected. Prompt targets are positions 1 … P−1.
        for (int r = 0; r < 2; r++)
        {
            int p = Prompts[r].Length;
            Close(Enumerable.Range(1, p - 1).Sum(t => lp[r, t]), prompts.LogpSum[r].item<float>(), 1e-5, $"prompt row {r}");
            Assert.Equal(p - 1, prompts.TokenCount[r].item<float>());
            Close(Enumerable.Range(p, Chosen[r].Length).Sum(t => lp[r, t]), completions.LogpSum[r].item<float>(), 1e-5, $"chosen row {r}");
            Close(Enumerable.Range(p, Rejected[r].Length).Sum(t => lp[r + 2, t]), completions.LogpSum[r + 2].item<float>(), 1e-5, $"rejected row {r}");
            Assert.Equal(Chosen[r].Length, completions.TokenCount[r].item<float>());
        }
        // The completion scores are exactly what the plain scorer gives.
        var plain = SequenceScorer.Score(model, batch.Sequences, head);
        Assert.Equal(plain.LogpSum.data<float>().ToArray(), completions.LogpSum.data<float>().ToArray());
        Assert.Equal(plain.TokenCount.data<float>().ToArray(), completions.TokenCount.data<float>().ToArray());
    }

    [Fact]
    public void The_objectives_nll_adds_the_prompt_tokens_to_the_chosen_ones()
    {
        // Chosen completions Σ log p (−2, −6) over (4, 3) tokens; their prompts (−5, −1) over (3, 1) tokens:
        // NLL = (2 + 6 + 5 + 1) / (4 + 3 + 3 + 1) = 14 / 11. The odds ratio uses the completions only.
        var chosen = Scores(new[] { -2.0, -6.0 }, new[] { 4.0, 3.0 });
        var rejected = Scores(new[] { -9.0, -5.0 }, new[] { 6.0, 2.0 });
        var prompts = Scores(new[] { -5.0, -1.0 }, new[] { 3.0, 1.0 });
        var orpo = new OrpoObjective(new OrpoOptions { Lambda = 0.25 });
        var withPrompts = orpo.Compute(chosen, rejected, prompts);
        var completionsOnly = new OrpoObjective(new OrpoOptions { Lambda = 0.25 }).Compute(
            Scores(new[] { -2.0, -6.0 }, new[] { 4.0, 3.0 }), Scores(new[] { -9.0, -5.0 }, new[] { 6.0, 2.0 }));
        Close(14.0 / 11.0, withPrompts.Metrics.Value("nll_loss"));
        Close(8.0 / 7.0, completionsOnly.Metrics.Value("nll_loss"));
        Close(Scalar(completionsOnly.Loss) - 8.0 / 7.0 + 14.0 / 11.0, Scalar(withPrompts.Loss));
        Close(completionsOnly.Metrics.Value("log_odds_ratio"), withPrompts.Metrics.Value("log_odds_ratio"));
        // d loss / d(prompt Σ log p) = −1 / 11 for each row.
        withPrompts.Loss.backward();
        Close(new[] { -1.0 / 11, -1.0 / 11 }, Grad(prompts));
    }

    [Theory]
    [InlineData(LogProbMode.Naive)]
    [InlineData(LogProbMode.Fused)]
    public void The_orpo_step_nll_is_trls_cross_entropy_over_prompt_and_chosen(LogProbMode head)
    {
        using var model = TinyModel();
        using var batch = Batch();
        using var scope = NewDisposeScope();
        // TRL: labels = input_ids where attention_mask == 1 else −100, over the chosen half; nn.CrossEntropyLoss
        // (mean over non-ignored) of logits[:, :-1] against labels[:, 1:].
        var s = batch.Sequences;
        var labels = where(s.AttentionMask.eq(1), s.InputIds, full_like(s.InputIds, -100)).narrow(0, 0, 2);
        double expected;
        using (no_grad())
        {
            var logits = model.Forward(s.InputIds).narrow(0, 0, 2).to(ScalarType.Float64);
            expected = F.cross_entropy(logits.narrow(1, 0, s.Length - 1).reshape(-1, 64), labels.narrow(1, 1, s.Length - 1).reshape(-1),
                ignore_index: -100).item<double>();
        }
        var result = AlignmentMethods.Orpo.CreateStep(new ObjectiveOptions(), new StepContext(model, null, head)).Compute(batch, eval: false);
        Close(expected, result.Metrics.Value("nll_loss"), 1e-5);
    }
}
