using Engine.Data;
using Engine.Kernels;
using Engine.Models;
using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Methods;

/// <summary>
/// Turns a padded batch into per-sequence completion statistics (Σ log p, token count, Σ row-mean logit).
/// Only the positions that are scored go through the LM head: prompt and padding rows are dropped before the head,
/// which on long prompts is most of the head's work and most of its memory. A method that also needs the prompt
/// tokens of some rows (ORPO's NLL over prompt + chosen) names them, and they go through the same single head pass.
/// </summary>
public static class SequenceScorer
{
    /// <summary>Scores every row of <paramref name="batch"/>; log-probs carry autograd when grad is enabled.</summary>
    public static SequenceScores Score(LlamaForCausalLM model, SequenceBatch batch, LogProbMode mode)
    {
        using var scope = NewDisposeScope();
        var (token, positions, _) = ScoredTokens(model, batch, mode, promptRows: null);
        using (token)
        {
            var rowOf = positions.div(batch.Length - 1, rounding_mode: RoundingMode.floor);
            return Keep(Sums(rowOf, token.LogProbs, token.LogitMeans, batch.Rows));
        }
    }

    /// <summary>
    /// Completion scores of every row, and the scores of the prompt tokens of rows [start, start + count): each
    /// prompt token after the first is predicted from the ones before it (TRL's ORPO computes its NLL over every
    /// non-padding label of prompt + chosen). One forward and one head pass over both kinds of position.
    /// </summary>
    public static (SequenceScores Completions, SequenceScores Prompts) ScoreWithPrompts(LlamaForCausalLM model, SequenceBatch batch, LogProbMode mode,
        int start, int count)
    {
        if (start < 0 || count < 1 || start + count > batch.Rows)
            throw new ArgumentOutOfRangeException(nameof(count), $"prompt rows [{start}, {start + count}) are outside the batch's {batch.Rows} rows");
        using var scope = NewDisposeScope();
        var (token, positions, isPrompt) = ScoredTokens(model, batch, mode, (start, count));
        using (token)
        {
            var rowOf = positions.div(batch.Length - 1, rounding_mode: RoundingMode.floor);
            var prompt = isPrompt!.to(ScalarType.Float32);
            var completion = 1 - prompt;
            var completions = Sums(rowOf, token.LogProbs * completion, token.LogitMeans * completion, batch.Rows, completion);
            var prompts = Sums(rowOf, token.LogProbs * prompt, token.LogitMeans * prompt, batch.Rows, prompt);
            return (Keep(completions), Keep(Slice(prompts, start, count)));
        }
    }

    static SequenceScores Keep(SequenceScores s) =>
        new(s.LogpSum.MoveToOuterDisposeScope(), s.TokenCount.MoveToOuterDisposeScope(), s.LogitSum.MoveToOuterDisposeScope());

    /// <summary>[rows] sums of the per-position values (each position weighted by <paramref name="weights"/>, default 1).</summary>
    static SequenceScores Sums(Tensor rowOf, Tensor logps, Tensor logitMeans, int rows, Tensor? weights = null)
    {
        var device = logps.device;
        var logpSum = zeros(rows, dtype: ScalarType.Float32, device: device).index_add(0, rowOf, logps, 1.0);
        var count = zeros(rows, dtype: ScalarType.Float32, device: device).index_add(0, rowOf, weights ?? ones_like(logitMeans), 1.0);
        var logitSum = zeros(rows, dtype: ScalarType.Float32, device: device).index_add(0, rowOf, logitMeans, 1.0);
        return new SequenceScores(logpSum, count, logitSum);
    }

    /// <summary>
    /// The policy forward and the head over the scored positions only: per-token results for the flattened positions
    /// (row · (T−1) + t) whose next token is a completion token, or a prompt token of a row in
    /// <paramref name="promptRows"/>; with prompt rows, which of those positions are prompt positions.
    /// </summary>
    static (TokenLogProbResult Token, Tensor Positions, Tensor? IsPrompt) ScoredTokens(LlamaForCausalLM model, SequenceBatch batch, LogProbMode mode,
        (int Start, int Count)? promptRows)
    {
        long t = batch.Length;
        // Right padding and a causal mask: real positions never see padding, so no attention mask is needed.
        var hidden = model.ForwardHidden(batch.InputIds);
        var labels = batch.Labels.narrow(1, 1, t - 1);
        var selected = labels.ne(TokenLogProbs.IgnoreIndex);
        var targets = labels;
        Tensor? promptMask = null;
        if (promptRows is var (start, count))
        {
            var inRange = zeros(new long[] { batch.Rows, 1 }, ScalarType.Bool, device: batch.InputIds.device);
            inRange.narrow(0, start, count).fill_(true);
            // A prompt target is a real token (attention 1) that is not a completion label.
            var next = batch.InputIds.narrow(1, 1, t - 1);
            promptMask = batch.AttentionMask.narrow(1, 1, t - 1).ne(0).logical_and(selected.logical_not()).logical_and(inRange);
            selected = selected.logical_or(promptMask);
            targets = where(promptMask, next, labels);
        }
        var positions = selected.reshape(-1).nonzero().squeeze(1);
        var selectedHidden = hidden.narrow(1, 0, t - 1).reshape(-1, hidden.shape[2]).index_select(0, positions);
        var token = TokenLogProbs.FromHidden(StepProfiler.Enter(OpClass.Head, selectedHidden), model.LmHeadWeight,
            targets.reshape(-1).index_select(0, positions), mode, softcap: model.Config.FinalLogitSoftcapping);
        token = token with { LogProbs = StepProfiler.Exit(OpClass.Head, token.LogProbs) };
        return (token, positions, promptMask?.reshape(-1).index_select(0, positions));
    }

    /// <summary>Rows [start, start+count) of scores (views; gradients flow through).</summary>
    public static SequenceScores Slice(SequenceScores s, int start, int count) =>
        new(s.LogpSum.narrow(0, start, count), s.TokenCount.narrow(0, start, count), s.LogitSum.narrow(0, start, count));

    /// <summary>
    /// Per-token log-probs [B, T-1] (zero outside completions) without gradient: the input of the KTO z0
    /// reduction over mismatched pairs.
    /// </summary>
    public static (Tensor TokenLogps, Tensor Mask) TokenLogps(LlamaForCausalLM model, SequenceBatch batch, LogProbMode mode)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long b = batch.Rows, t = batch.Length;
        var (token, positions, _) = ScoredTokens(model, batch, mode, promptRows: null);
        using (token)
        {
            var full = zeros(b * (t - 1), dtype: ScalarType.Float32, device: token.LogProbs.device).index_copy(0, positions, token.LogProbs).view(b, t - 1);
            var mask = batch.Labels.narrow(1, 1, t - 1).ne(TokenLogProbs.IgnoreIndex);
            return (full.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope());
        }
    }
}
