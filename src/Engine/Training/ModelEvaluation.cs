using Engine.Adapters;
using Engine.Data;
using Engine.Methods;
using Engine.Models;

namespace Engine.Training;

/// <summary>`engine eval`: a model, its reference, a dataset and the step settings the metrics are computed with.</summary>
public sealed record EvaluationOptions
{
    /// <summary>Model, reference model (<see cref="StepSettings.ReferenceModel"/>), method and objective, micro-batch, lengths, head.</summary>
    public StepSettings Step { get; init; } = new() { MicroBatch = 8 };
    public string DataPath { get; init; } = "";
    /// <summary>A PEFT adapter folder applied to <see cref="StepSettings.Model"/>; without --ref, the reference is the base (adapter off).</summary>
    public string? Adapter { get; init; }
    public long Seed { get; init; } = 42;
}

/// <summary>
/// `engine eval`: a model against a reference on a dataset, reporting the objective's metrics (the seed paper's
/// Table 1 columns). Both models are loaded; nothing is trained or written.
/// </summary>
public static class ModelEvaluation
{
    /// <summary>The methods eval scores: those whose metrics compare a model with a reference.</summary>
    public static IReadOnlyList<AlignmentMethod> Methods { get; } = new AlignmentMethod[] { AlignmentMethods.Dpo, AlignmentMethods.Kto };

    public static IReadOnlyDictionary<string, double> Run(EvaluationOptions o)
    {
        var s = o.Step;
        if (!Methods.Contains(s.Method))
            throw new EngineException($"eval supports --method {string.Join(" or ", Methods.Select(m => m.Name))} (got {s.Method.Name})");
        s.Validate();
        using var adapted = AdaptedModel.Load(s.Model, o.Adapter, s.Dtype, requireTokenizer: true);
        var loaded = adapted.Base;
        loaded.Model.Kernels = s.Kernels;
        var data = DatasetReader.Read(o.DataPath, s.Method.ReadOptions);
        var renderer = RunData.ChatRenderer(loaded.RequireTokenizer(), data, null);
        var split = s.Method.Prepare(data, new ExampleTokenizer(loaded.RequireTokenizer(), s.Tokenization, renderer),
            new Batching(s.MicroBatch, o.Seed), s.Objective);
        using Methods.IReferenceLogps? reference = !s.UsesReference ? null
            : adapted.Adapters is { } adapters && s.ReferenceModel is null ? new AdapterOffReference(loaded.Model, adapters, s.Head)
            : new ResidentReference(ModelLoader.Load(s.ReferenceModel ?? throw new EngineException("eval needs --ref DIR, an --adapter DIR (whose base is then the reference) or --reference-free"), s.Dtype).Model, s.Head);
        var step = s.Method.CreateStep(s.Objective, new StepContext(loaded.Model, reference, s.Head));
        return Evaluation.Run(step, split.Batches);
    }
}
