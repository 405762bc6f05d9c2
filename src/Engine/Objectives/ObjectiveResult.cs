using static TorchSharp.torch;

namespace Engine.Objectives;

/// <summary>A microbatch's loss (scalar fp32, mean over the microbatch, with autograd) and its metrics.</summary>
public sealed record ObjectiveResult(Tensor Loss, ObjectiveMetrics Metrics);
