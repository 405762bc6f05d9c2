using Engine.Data;
using Engine.Methods;

namespace Engine.Training;

/// <summary>
/// How one optimizer step combines its micro-batch losses — the gradient-accumulation normalisation, decided here
/// and nowhere else. Each micro-batch's loss is a mean over its loss units (<see cref="AlignmentMethod.LossUnits"/>:
/// 1 per micro-batch for DPO/KTO/ORPO/SimPO, scored tokens for SFT), and micro-batch m is weighted
/// units_m / Σ units, so the step's loss Σ_m weight_m · loss_m is the mean over every unit of the step: the mean
/// of the micro-batch means (TRL's DPO/KTO) or the summed token NLL over the step's token count (TRL's SFT with
/// num_items_in_batch). A data-parallel step sums <see cref="TotalUnits"/> over all ranks before the weights are
/// taken (and sums the gradients), so the same rule holds across ranks.
/// </summary>
public sealed class MicroBatchWeights
{
    readonly double[] _units;

    /// <summary>Σ units the weights divide by: this process's micro-batches, or every rank's when given.</summary>
    public double TotalUnits { get; }

    MicroBatchWeights(double[] units, double total)
    {
        if (!(total > 0) || !double.IsFinite(total))
            throw new EngineException($"the optimizer step has no loss units to average over (total {total}): every micro-batch is empty");
        _units = units;
        TotalUnits = total;
    }

    /// <param name="totalUnits">Σ units over every rank of a data-parallel step; null: this process's micro-batches only</param>
    public static MicroBatchWeights For(AlignmentMethod method, IReadOnlyList<ITrainBatch> microBatches, double? totalUnits = null)
    {
        var units = microBatches.Select(method.LossUnits).ToArray();
        return new MicroBatchWeights(units, totalUnits ?? units.Sum());
    }

    /// <summary>The local units of each micro-batch (what a data-parallel step sums across ranks).</summary>
    public IReadOnlyList<double> Units => _units;

    /// <summary>The weight of micro-batch <paramref name="m"/>'s loss in the step's loss.</summary>
    public double this[int m] => _units[m] / TotalUnits;
}
