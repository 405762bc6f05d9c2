using Engine.Kernels;
using Engine.Models;
using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>
/// One microbatch's loss for a method: policy forward → per-sequence scores → (reference log-probs) →
/// objective. Used for training steps (autograd on) and evaluation (autograd off).
/// </summary>
public sealed class MethodStep
{
    readonly AlignmentMethod _method;
    readonly LlamaForCausalLM _policy;
    readonly IReferenceLogps? _reference;
    readonly LogProbMode _mode;
    readonly DpoObjective? _dpo;
    readonly KtoObjective? _kto;
    readonly OrpoObjective? _orpo;
    readonly SimpoObjective? _simpo;

    public MethodStep(AlignmentMethod method, LlamaForCausalLM policy, IReferenceLogps? reference, LogProbMode mode, ObjectiveSettings objectives)
    {
        _method = method;
        _policy = policy;
        _reference = reference;
        _mode = mode;
        switch (method)
        {
            case AlignmentMethod.Dpo: _dpo = new DpoObjective(objectives.Dpo); break;
            case AlignmentMethod.Kto: _kto = new KtoObjective(objectives.Kto); break;
            case AlignmentMethod.Orpo: _orpo = new OrpoObjective(objectives.Orpo); break;
            case AlignmentMethod.Simpo: _simpo = new SimpoObjective(objectives.Simpo); break;
        }
    }

    public ObjectiveResult Compute(TrainBatch batch, bool eval)
    {
        switch (_method)
        {
            case AlignmentMethod.Kto: return Kto(batch.Unpaired!, eval);
            case AlignmentMethod.Sft: return SftObjective.Compute(SequenceScorer.Score(_policy, batch.Completions!.Sequences, _mode));
            default: return Paired(batch.Paired!, eval);
        }
    }

    ObjectiveResult Paired(Data.PairedBatch batch, bool eval)
    {
        var scores = SequenceScorer.Score(_policy, batch.Sequences, _mode);
        var chosen = SequenceScorer.Slice(scores, 0, batch.Pairs);
        var rejected = SequenceScorer.Slice(scores, batch.Pairs, batch.Pairs);
        switch (_method)
        {
            case AlignmentMethod.Dpo:
                if (_reference is null) return _dpo!.Compute(chosen, rejected, null, null);
                var (refChosen, refRejected) = _reference.Paired(batch, eval);
                return _dpo!.Compute(chosen, rejected, refChosen, refRejected);
            case AlignmentMethod.Orpo: return _orpo!.Compute(chosen, rejected);
            default: return _simpo!.Compute(chosen, rejected);
        }
    }

    ObjectiveResult Kto(Data.UnpairedBatch batch, bool eval)
    {
        var z0 = new Z0Estimate(0, 0);
        if (_kto!.NeedsZ0)
        {
            // z0 comes from the mismatched pairs, without gradient (TRL and the paper).
            var (tokenLogps, mask) = SequenceScorer.TokenLogps(_policy, batch.MismatchedSequences, _mode);
            using (tokenLogps)
            using (mask)
            using (var referenceSums = _reference?.Mismatched(batch, eval) ?? zeros(batch.Rows))
            {
                if (_mode == LogProbMode.Naive)
                {
                    using var policySums = (tokenLogps * mask).sum(1);
                    z0 = KtoObjective.EstimateZ0(policySums, referenceSums);
                }
                else
                {
                    var kl = KlReduction.ComputeWithReferenceSums(tokenLogps, referenceSums, mask);
                    z0 = new Z0Estimate(kl.MeanRaw, kl.Z0);
                    kl.Dispose();
                }
            }
        }
        var policy = SequenceScorer.Score(_policy, batch.Sequences, _mode);
        var reference = _reference?.Completions(batch, eval);
        return _kto.Compute(policy, reference, batch.Desirable, z0);
    }
}

/// <summary>The per-method objective options of one run.</summary>
public sealed record ObjectiveSettings(DpoOptions Dpo, KtoOptions Kto, OrpoOptions Orpo, SimpoOptions Simpo)
{
    public static ObjectiveSettings From(TrainingOptions o, AlignmentMethodInfo method)
    {
        double beta = o.Beta ?? method.DefaultBeta ?? 0.1;
        var dpo = new DpoOptions
        {
            Beta = beta, LabelSmoothing = o.LabelSmoothing, ReferenceFree = o.ReferenceFree, RpoAlpha = o.RpoAlpha,
            LossType = method.Method == AlignmentMethod.Dpo && o.LossType != null ? AlignmentMethods.ParseDpoLossType(o.LossType) : DpoLossType.Sigmoid,
        };
        var kto = new KtoOptions
        {
            Beta = beta, ReferenceFree = o.ReferenceFree, UseZ0 = !o.NoZ0,
            DesirableWeight = o.DesirableWeight, UndesirableWeight = o.UndesirableWeight,
            LossType = method.Method == AlignmentMethod.Kto && o.LossType != null ? AlignmentMethods.ParseKtoLossType(o.LossType) : KtoLossType.Kto,
        };
        var orpo = new OrpoOptions { Lambda = beta };
        var simpo = new SimpoOptions { Beta = beta, Gamma = o.SimpoGamma ?? new SimpoOptions().Gamma };
        if (o.LossType != null && method.Method is not (AlignmentMethod.Dpo or AlignmentMethod.Kto))
            throw new EngineException($"--loss-type applies to dpo and kto, not {method.Name}");
        switch (method.Method)
        {
            case AlignmentMethod.Dpo: dpo.Validate(); break;
            case AlignmentMethod.Kto: kto.Validate(); break;
            case AlignmentMethod.Orpo: orpo.Validate(); break;
            case AlignmentMethod.Simpo: simpo.Validate(); break;
        }
        return new ObjectiveSettings(dpo, kto, orpo, simpo);
    }
}
