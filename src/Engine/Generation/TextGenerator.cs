using Engine.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Engine.Generation;

/// <summary>
/// Batched autoregressive decoding with a KV cache: prompts are left-padded, each step feeds one token per
/// sequence, so a step costs one token's projections plus attention over the cache.
/// </summary>
public sealed class TextGenerator
{
    readonly LlamaForCausalLM _model;
    readonly int? _eosId;
    readonly int _padId;

    public TextGenerator(LlamaForCausalLM model, int? eosId, int padId = 0)
    {
        _model = model;
        _eosId = eosId;
        _padId = padId;
    }

    /// <summary>Generates continuations for each prompt (token ids); returns only the new ids.</summary>
    public List<int[]> Generate(IReadOnlyList<int[]> prompts, SamplingOptions options)
    {
        options.Validate();
        if (prompts.Count == 0) return new();
        if (prompts.Any(p => p.Length == 0)) throw new EngineException("every prompt needs at least one token (add BOS for an empty prompt)");
        int vocab = _model.Config.VocabSize;
        foreach (var p in prompts)
            foreach (var id in p)
                if (id < 0 || id >= vocab) throw new EngineException($"token id {id} is outside the vocabulary (0..{vocab - 1})");
        int batch = prompts.Count;
        int promptLen = prompts.Max(p => p.Length);
        int capacity = promptLen + options.MaxNewTokens;
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToList();
        if (options.MaxNewTokens == 0) return outputs.Select(o => o.ToArray()).ToList();

        var sampler = new TokenSampler(options);
        var finished = new bool[batch];
        using var noGrad = torch.no_grad();
        using var cache = new KvCache(_model.Config, batch, capacity, _model.Dtype);

        // Prefill with left padding.
        var ids = new long[batch * promptLen];
        var mask = new bool[batch * promptLen];
        for (int b = 0; b < batch; b++)
        {
            int pad = promptLen - prompts[b].Length;
            for (int t = 0; t < promptLen; t++)
            {
                ids[b * promptLen + t] = t < pad ? _padId : prompts[b][t - pad];
                mask[b * promptLen + t] = t >= pad;
            }
        }
        bool anyPad = prompts.Any(p => p.Length != promptLen);
        Tensor? nextLogits;
        using (var scope = NewDisposeScope())
        {
            var input = torch.tensor(ids, new long[] { batch, promptLen });
            var attention = anyPad ? torch.tensor(mask, new long[] { batch, promptLen }) : null;
            var hidden = _model.ForwardHidden(input, attention, cache: cache);
            nextLogits = _model.Logits(hidden.narrow(1, promptLen - 1, 1)).squeeze(1).to(ScalarType.Float32).MoveToOuterDisposeScope();
        }

        for (int step = 0; step < options.MaxNewTokens; step++)
        {
            var next = sampler.Sample(nextLogits);
            nextLogits.Dispose();
            for (int b = 0; b < batch; b++)
            {
                if (finished[b]) continue;
                if (options.StopAtEos && _eosId is int eos && next[b] == eos) { finished[b] = true; continue; }
                outputs[b].Add(next[b]);
            }
            if (finished.All(f => f) || step == options.MaxNewTokens - 1) break;
            using var scope = NewDisposeScope();
            var input = torch.tensor(next.Select(i => (long)i).ToArray(), new long[] { batch, 1 });
            var hidden = _model.ForwardHidden(input, cache: cache);
            nextLogits = _model.Logits(hidden).squeeze(1).to(ScalarType.Float32).MoveToOuterDisposeScope();
        }
        return outputs.Select(o => o.ToArray()).ToList();
    }
}
