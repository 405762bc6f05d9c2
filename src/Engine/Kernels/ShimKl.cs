using static TorchSharp.torch;
namespace Engine.Kernels;
public readonly record struct KlResult(Tensor PolicySums, Tensor ReferenceSums, double MeanRaw, double Z0) : IDisposable { public void Dispose() { PolicySums.Dispose(); ReferenceSums.Dispose(); } }
public static class KlReduction {
  public static KlResult ComputeWithReferenceSums(Tensor p, Tensor r, Tensor mask) { var ps = (p * mask).sum(1); var raw = (ps - r).mean().item<float>(); return new KlResult(ps, r.clone(), raw, Math.Max(0, raw)); }
}
