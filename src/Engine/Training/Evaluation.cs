using Engine.Data;
using Engine.Methods;
using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>Objective metrics over a whole split, without gradients: the eval pass of training and `engine eval`.</summary>
public static class Evaluation
{
    public static IReadOnlyDictionary<string, double> Run(IMethodStep step, IBatchSource<ITrainBatch> data)
    {
        using var noGrad = no_grad();
        var metrics = new ObjectiveMetrics();
        double lossSum = 0;
        long examples = 0;
        foreach (var batch in data.Batches(1, DataPosition.Start))
        {
            using (batch)
            using (var scope = NewDisposeScope())
            {
                var result = step.Compute(batch, eval: true);
                lossSum += result.Loss.item<float>() * batch.Examples;
                examples += batch.Examples;
                metrics.Merge(result.Metrics);
            }
        }
        var values = new Dictionary<string, double> { [MetricNames.Loss] = examples > 0 ? lossSum / examples : double.NaN };
        foreach (var name in metrics.Names) values[name] = metrics.Value(name);
        return values;
    }
}
