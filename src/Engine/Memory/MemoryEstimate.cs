namespace Engine.Memory;

/// <summary>What a component is, for code that looks components up (the name is for people).</summary>
public enum ComponentKind { Other, Weights, MasterWeights, Gradients, OptimizerStates, ReferenceModel, BatchTensors, Adapters }

/// <summary>A named amount of memory inside a peak, with the formula it came from.</summary>
public sealed record MemoryComponent(string Name, long Bytes, string Formula, ComponentKind Kind = ComponentKind.Other);

/// <summary>One moment of the step where memory may peak, and what is alive then.</summary>
public sealed record PeakPoint(string Name, IReadOnlyList<MemoryComponent> Parts)
{
    public long Bytes => Parts.Sum(p => p.Bytes);
}

/// <summary>The predicted memory of one training step: every candidate peak moment, the highest, and the device allowances.</summary>
public sealed record MemoryEstimate(PlannedStep Settings, long Parameters, IReadOnlyList<MemoryComponent> Static,
    IReadOnlyList<PeakPoint> Points, IReadOnlyList<MemoryComponent> Allowances)
{
    public PeakPoint PeakPoint => Points.MaxBy(p => p.Bytes)!;
    public long StaticBytes => Static.Sum(c => c.Bytes);
    public long TensorPeakBytes => PeakPoint.Bytes;
    /// <summary>The whole prediction: tensors at the highest moment plus the device's allowances.</summary>
    public long PeakBytes => TensorPeakBytes + Allowances.Sum(a => a.Bytes);
}
