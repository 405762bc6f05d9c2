using Engine.Data;
using Engine.Distributed;
using Engine.Methods;
using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>
/// Objective metrics over a whole split, without gradients: the eval pass of training and `engine eval`. On a
/// data-parallel run each rank scores its shard and the sums are reduced, so every rank returns the whole split's metrics.
/// </summary>
public static class Evaluation
{
    public static IReadOnlyDictionary<string, double> Run(IMethodStep step, IBatchSource<ITrainBatch> data, ICommunicator? ranks = null)
    {
        ranks ??= SingleProcess.Instance;
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
        Span<double> totals = stackalloc double[] { lossSum, examples };
        ranks.AllReduceSum(totals);
        (lossSum, double all) = (totals[0], totals[1]);
        metrics = metrics.AcrossRanks(ranks);
        var values = new Dictionary<string, double> { [MetricNames.Loss] = all > 0 ? lossSum / all : double.NaN };
        foreach (var name in metrics.Names) values[name] = metrics.Value(name);
        return values;
    }
}
