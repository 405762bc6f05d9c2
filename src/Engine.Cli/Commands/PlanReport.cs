using Engine.Memory;
using Engine.Training;
using Engine.Util;

namespace Engine.Cli.Commands;

/// <summary>Text and JSON renderings of a memory plan and of a measurement beside its prediction.</summary>
public static class PlanReport
{
    public static Dictionary<string, object?> ToJson(string model, MemoryPlan plan)
    {
        var c = plan.Shown;
        var s = c.Settings;
        var json = new Dictionary<string, object?>
        {
            ["model"] = model,
            ["parameters"] = plan.Parameters,
            ["architecture"] = Engine.Models.ModelSummary.ToJson(plan.Request.Config),
            ["method"] = s.Method.Name,
            ["seq_len"] = s.MaxLength,
            ["device"] = Spelling.Of(plan.Request.Device),
            ["vram_bytes"] = plan.Request.BudgetBytes,
            ["target_effective_batch"] = plan.Request.TargetEffectiveBatch,
            ["fits"] = plan.Fits,
            ["micro_batch"] = s.MicroBatch,
            ["grad_accum"] = c.GradAccum,
            ["effective_batch"] = c.EffectiveBatch,
            ["precision"] = Spelling.Of(s.Precision),
            ["optimizer_state_dtype"] = s.Bf16OptimizerStates ? "bf16" : "f32",
            ["checkpointing"] = s.ActivationCheckpointing,
            ["head"] = Spelling.Of(s.Head),
            ["reference"] = !s.UsesReference ? "none" : Spelling.Of(s.Reference),
            ["peak_bytes"] = c.Estimate.PeakBytes,
            ["tensor_peak_bytes"] = c.Estimate.TensorPeakBytes,
            ["peak_point"] = c.Estimate.PeakPoint.Name,
            ["short_by_bytes"] = c.ShortBy,
            ["relative_throughput"] = Math.Round(c.Throughput, 3),
            ["components"] = c.Estimate.PeakPoint.Parts.Concat(c.Estimate.Allowances)
                .Select(p => new Dictionary<string, object> { ["name"] = p.Name, ["bytes"] = p.Bytes, ["formula"] = p.Formula }).ToList(),
            ["points"] = c.Estimate.Points.Select(p => new Dictionary<string, object> { ["name"] = p.Name, ["bytes"] = p.Bytes }).ToList(),
            ["alternatives"] = plan.Alternatives.Select(a => new Dictionary<string, object>
            {
                ["change"] = a.Change, ["micro_batch"] = a.Candidate.Settings.MicroBatch, ["peak_bytes"] = a.Candidate.Estimate.PeakBytes,
                ["fits"] = a.Candidate.Fits, ["short_by_bytes"] = a.Candidate.ShortBy,
                ["relative_throughput"] = Math.Round(a.Candidate.Throughput, 3),
            }).ToList(),
            ["candidates_considered"] = plan.CandidatesConsidered,
            ["lora"] = LoraJson(plan.Request.Config, c),
        };
        return json;
    }

    /// <summary>The LoRA parts of the plan (null for full fine-tuning).</summary>
    static Dictionary<string, object?>? LoraJson(Engine.Models.LlamaConfig config, PlanCandidate c)
    {
        var lora = c.Settings.Lora;
        if (!lora.Enabled) return null;
        var model = new StepMemoryModel(config, c.Planned);
        long Kind(ComponentKind k) => c.Estimate.Static.Where(x => x.Kind == k).Sum(x => x.Bytes);
        return new Dictionary<string, object?>
        {
            ["rank"] = lora.Rank,
            ["alpha"] = lora.Alpha,
            ["dropout"] = lora.Dropout,
            ["target_modules"] = lora.Targets.ToList(),
            ["base_quantization"] = Spelling.Of(lora.Quantization),
            ["nested_quantization"] = lora.NestedQuantization,
            ["trainable_parameters"] = model.TrainableParameters,
            ["frozen_base_bytes"] = Kind(ComponentKind.Weights),
            ["adapter_bytes"] = Kind(ComponentKind.Adapters),
            ["adapter_gradient_bytes"] = Kind(ComponentKind.Gradients),
            ["adapter_optimizer_bytes"] = Kind(ComponentKind.MasterWeights) + Kind(ComponentKind.OptimizerStates),
            ["adapter_saved_activations_per_layer_bytes"] = model.AdapterSavedPerLayer,
            ["dequant_workspace_bytes"] = model.DequantWorkspace,
        };
    }

    public static void WriteText(TextWriter w, string model, MemoryPlan plan)
    {
        var c = plan.Shown;
        var s = c.Settings;
        w.WriteLine($"{model}: {plan.Parameters:N0} parameters; {s.Method.Name.ToUpperInvariant()}, seq {s.MaxLength}, budget {ByteSize.Format(plan.Request.BudgetBytes)} ({Spelling.Of(plan.Request.Device)})");
        if (plan.Fits)
            w.WriteLine($"plan: {s.Describe()}; grad accumulation {c.GradAccum} (effective batch {c.EffectiveBatch}); " +
                        $"peak {ByteSize.Format(c.Estimate.PeakBytes)} of {ByteSize.Format(plan.Request.BudgetBytes)} ({c.Estimate.PeakPoint.Name})");
        else
            w.WriteLine($"does not fit: even the smallest configuration ({s.Describe()}) needs {ByteSize.Format(c.Estimate.PeakBytes)}, " +
                        $"{ByteSize.Format(c.ShortBy)} ({c.ShortBy:N0} bytes) more than {ByteSize.Format(plan.Request.BudgetBytes)}");
        w.WriteLine($"components at the peak ({c.Estimate.PeakPoint.Name}):");
        foreach (var p in c.Estimate.PeakPoint.Parts.Concat(c.Estimate.Allowances).Where(p => p.Bytes > 0))
            w.WriteLine($"  {p.Name,-42} {ByteSize.Format(p.Bytes),12}  {p.Bytes,15:N0}  {p.Formula}");
        w.WriteLine($"  {"total",-42} {ByteSize.Format(c.Estimate.PeakBytes),12}  {c.Estimate.PeakBytes,15:N0}");
        w.WriteLine("other moments of the step (tensors only):");
        foreach (var p in c.Estimate.Points) w.WriteLine($"  {p.Name,-42} {ByteSize.Format(p.Bytes),12}");
        w.WriteLine("alternatives (one change each):");
        foreach (var a in plan.Alternatives)
        {
            string verdict = a.Candidate.Fits ? "fits" : $"does not fit: short by {ByteSize.Format(a.Candidate.ShortBy)}";
            w.WriteLine($"  {a.Change,-32} peak {ByteSize.Format(a.Candidate.Estimate.PeakBytes),11}  {verdict}; throughput ×{a.Candidate.Throughput / c.Throughput:0.00}");
        }
    }

    public static Dictionary<string, object?> MeasurementJson(MemoryEstimate predicted, StepMeasurementResult m)
    {
        return new Dictionary<string, object?>
        {
            ["settings"] = predicted.Settings.Describe(),
            ["predicted_peak_bytes"] = predicted.TensorPeakBytes,
            ["measured_peak_bytes"] = m.PeakBytes,
            ["ratio"] = Math.Round((double)m.PeakBytes / predicted.TensorPeakBytes, 4),
            ["step_seconds"] = Math.Round(m.StepSeconds, 3),
            ["repeats"] = m.Repeats,
            ["components"] = Rows(predicted, m).Select(r => new Dictionary<string, object> { ["name"] = r.Name, ["predicted_bytes"] = r.Predicted, ["measured_bytes"] = r.Measured }).ToList(),
            ["runtime_workspace_bytes"] = m.RuntimeWorkspaceBytes,
        };
    }

    /// <summary>Predicted and measured bytes per measurable component.</summary>
    public static IEnumerable<(string Name, long Predicted, long Measured)> Rows(MemoryEstimate e, StepMeasurementResult m)
    {
        long Static(params ComponentKind[] kinds) => e.Static.Where(c => kinds.Contains(c.Kind)).Sum(c => c.Bytes);
        long weights = Static(ComponentKind.Weights, ComponentKind.Adapters); // measured once the adapters are attached
        long optimizer = Static(ComponentKind.MasterWeights, ComponentKind.OptimizerStates, ComponentKind.ReferenceModel);
        long gradients = Static(ComponentKind.Gradients);
        yield return ("weights", weights, m.WeightsBytes);
        yield return ("masters + Adam states (+ reference)", optimizer, m.OptimizerAndReferenceBytes);
        yield return ("gradients", gradients, m.GradientsBytes);
        yield return ($"step above its start ({e.PeakPoint.Name})", e.TensorPeakBytes - weights - optimizer - gradients, m.StepDynamicBytes);
        yield return ("peak", e.TensorPeakBytes, m.PeakBytes);
    }

    public static void WriteMeasurement(TextWriter w, MemoryEstimate e, StepMeasurementResult m)
    {
        w.WriteLine($"measured on the CPU ({m.Repeats} step(s) after a warm-up, {m.StepSeconds:0.00} s/step): {e.Settings.Describe()}");
        w.WriteLine($"  {"component",-48} {"predicted",12} {"measured",12} {"ratio",7}");
        foreach (var (name, p, me) in Rows(e, m))
            w.WriteLine($"  {name,-48} {ByteSize.Format(p),12} {ByteSize.Format(me),12} {(p > 0 ? (double)me / p : double.NaN),7:0.000}");
        w.WriteLine($"  (not counted: {ByteSize.Format(m.RuntimeWorkspaceBytes)} left in BLAS/oneDNN buffers and library caches before the measured steps)");
    }
}
