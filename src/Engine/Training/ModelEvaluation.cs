using Engine.Models;
using Engine.Objectives;

namespace Engine.Training;

/// <summary>
/// `engine eval`: a model against a reference on a dataset, reporting the objective's metrics (the seed paper's
/// Table 1 columns). Both models are loaded; nothing is trained or written.
/// </summary>
public static class ModelEvaluation
{
    public static IReadOnlyDictionary<string, double> Run(TrainingOptions o)
    {
        var info = AlignmentMethods.Info(AlignmentMethods.Parse(o.Method));
        if (info.Method is not (AlignmentMethod.Dpo or AlignmentMethod.Kto))
            throw new EngineException($"eval supports --method dpo or kto (got {info.Name})");
        var objectives = ObjectiveSettings.From(o, info);
        var dtype = AlignmentTrainer.ComputeDtype(o.Precision);
        using var loaded = ModelLoader.Load(o.ModelPath, dtype, requireTokenizer: true);
        var data = RunData.Prepare(o with { EvalDataPath = null, EvalFraction = 0 }, info, loaded.RequireTokenizer(), o.BatchSize);
        using IReferenceLogps? reference = o.ReferenceFree ? null
            : new ResidentReference(ModelLoader.Load(o.ReferenceModelPath ?? throw new EngineException("eval needs --ref DIR (or --reference-free)"), dtype).Model, o.LogProb);
        var step = new MethodStep(info.Method, loaded.Model, reference, o.LogProb, objectives);
        return Evaluation.Run(step, data.Train);
    }
}
