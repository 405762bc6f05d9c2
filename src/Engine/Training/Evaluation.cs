using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>Objective metrics over a whole split, without gradients: the eval pass of training and `engine eval`.</summary>
public static class Evaluation
{
    public static IReadOnlyDictionary<string, double> Run(MethodStep step, RunBatches data)
    {
        using var noGrad = no_grad();
        var metrics = new ObjectiveMetrics();
        double lossSum = 0;
        long rows = 0;
        foreach (var batch in TrainBatch.Enumerate(data, 1, default))
        {
            using (batch)
            using (var scope = NewDisposeScope())
            {
                var result = step.Compute(batch, eval: true);
                int n = batch.Paired?.Pairs ?? batch.Unpaired?.Rows ?? batch.Completions!.Sequences.Rows;
                lossSum += result.Loss.item<float>() * n;
                rows += n;
                metrics.Merge(result.Metrics);
            }
        }
        var values = new Dictionary<string, double> { ["loss"] = rows > 0 ? lossSum / rows : double.NaN };
        foreach (var name in metrics.Names) values[name] = metrics.Value(name);
        return values;
    }
}
