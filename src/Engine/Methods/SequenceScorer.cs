using Engine.Data;
using Engine.Kernels;
using Engine.Models;
using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Methods;

/// <summary>
/// Turns a padded batch into per-sequence completion statistics (Σ log p, token count, Σ row-mean logit).
/// Only completion positions go through the LM head: prompt and padding rows are dropped before the head,
/// which on long prompts is most of the head's work and most of its memory.
/// </summary>
public static class SequenceScorer
{
    /// <summary>Scores every row of <paramref name="batch"/>; log-probs carry autograd when grad is enabled.</summary>
    public static SequenceScores Score(LlamaForCausalLM model, SequenceBatch batch, LogProbMode mode)
    {
        using var scope = NewDisposeScope();
        var (token, positions, _) = CompletionTokens(model, batch, mode);
        using (token)
        {
            var rowOf = positions.div(batch.Length - 1, rounding_mode: RoundingMode.floor);
            var logpSum = zeros(batch.Rows, dtype: ScalarType.Float32).index_add(0, rowOf, token.LogProbs, 1.0);
            var count = zeros(batch.Rows, dtype: ScalarType.Float32).index_add(0, rowOf, ones_like(token.LogitMeans), 1.0);
            var logitSum = zeros(batch.Rows, dtype: ScalarType.Float32).index_add(0, rowOf, token.LogitMeans, 1.0);
            return new SequenceScores(logpSum.MoveToOuterDisposeScope(), count.MoveToOuterDisposeScope(), logitSum.MoveToOuterDisposeScope());
        }
    }

    /// <summary>
    /// The policy forward and the head over completion positions only: per-token results for the flattened
    /// positions (row · (T−1) + t) whose next token is a completion token, and the [B·(T−1)] completion mask.
    /// </summary>
    static (TokenLogProbResult Token, Tensor Positions, Tensor Mask) CompletionTokens(LlamaForCausalLM model, SequenceBatch batch, LogProbMode mode)
    {
        long t = batch.Length;
        // Right padding and a causal mask: real positions never see padding, so no attention mask is needed.
        var hidden = model.ForwardHidden(batch.InputIds);
        var targets = batch.Labels.narrow(1, 1, t - 1).reshape(-1);
        var mask = targets.ne(TokenLogProbs.IgnoreIndex);
        var positions = mask.nonzero().squeeze(1);
        var selectedHidden = hidden.narrow(1, 0, t - 1).reshape(-1, hidden.shape[2]).index_select(0, positions);
        var token = TokenLogProbs.FromHidden(selectedHidden, model.LmHeadWeight, targets.index_select(0, positions), mode, softcap: model.Config.FinalLogitSoftcapping);
        return (token, positions, mask);
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
        var (token, positions, mask) = CompletionTokens(model, batch, mode);
        using (token)
        {
            var full = zeros(b * (t - 1), dtype: ScalarType.Float32).index_copy(0, positions, token.LogProbs).view(b, t - 1);
            return (full.MoveToOuterDisposeScope(), mask.view(b, t - 1).MoveToOuterDisposeScope());
        }
    }
}
