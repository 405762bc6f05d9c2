using Engine.Adapters;
using Engine.Kernels;
using Engine.Methods;
using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>
/// The resident reference of a LoRA run: the policy itself with its adapters switched off, i.e. the frozen base. It holds
/// no weights of its own (TRL does the same with a PEFT model) and does not own the policy.
/// </summary>
public sealed class AdapterOffReference : IReferenceLogps
{
    readonly LlamaForCausalLM _policy;
    readonly LoraAdapters _adapters;
    readonly LogProbMode _mode;

    public AdapterOffReference(LlamaForCausalLM policy, LoraAdapters adapters, LogProbMode mode)
    {
        _policy = policy; _adapters = adapters; _mode = mode;
    }

    public Tensor Sums(ReferenceQuery query, bool eval)
    {
        using var noGrad = no_grad();
        using var off = _adapters.Disabled();
        var s = SequenceScorer.Score(_policy, query.Sequences, _mode);
        s.TokenCount.Dispose();
        s.LogitSum.Dispose();
        return s.LogpSum;
    }

    public void Dispose() { }
}
