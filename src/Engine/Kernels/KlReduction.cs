using Engine.Kernels.Cuda;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels;

/// <summary>
/// KTO's z0 from the mismatched pairs of a microbatch: per-sequence sums of the policy and reference per-token
/// log-probs under the completion mask (fp32 [B]), their mean difference (MeanRaw, before clamping) and
/// Z0 = max(0, MeanRaw), NaN when MeanRaw is NaN (so the non-finite guard sees it). One kernel launch;
/// deterministic (fixed summation order in double, identical bits on every run and between the CPU and CUDA
/// kernels); no gradient.
/// </summary>
public readonly record struct KlResult(Tensor PolicySums, Tensor ReferenceSums, double MeanRaw, double Z0) : IDisposable
{
    public void Dispose()
    {
        PolicySums.Dispose();
        ReferenceSums.Dispose();
    }
}

public static class KlReduction
{
    /// <summary>
    /// policy [B, T] f32; reference either per-token [B, T] f32 or precomputed per-sequence sums [B];
    /// mask [B, T] bool or numeric (non-zero = completion token).
    /// </summary>
    public static KlResult Compute(Tensor policyTokenLogps, Tensor referenceTokenLogps, Tensor mask) =>
        referenceTokenLogps.dim() == 1
            ? ComputeWithReferenceSums(policyTokenLogps, referenceTokenLogps, mask)
            : Run(policyTokenLogps, referenceTokenLogps, null, mask);

    /// <summary>As <see cref="Compute"/>, with the reference given as per-sequence sums [B] (the trainer's cache).</summary>
    public static KlResult ComputeWithReferenceSums(Tensor policyTokenLogps, Tensor referenceSums, Tensor mask) =>
        Run(policyTokenLogps, null, referenceSums, mask);

    static unsafe KlResult Run(Tensor policy, Tensor? referenceTokens, Tensor? referenceSums, Tensor mask)
    {
        if (policy.dim() != 2) throw new ArgumentException($"policy log-probs must be [batch, tokens] (got {policy.dim()} dimensions)");
        long batch = policy.shape[0], tokens = policy.shape[1];
        if (batch < 2)
            throw new EngineException($"KTO's z0 needs a microbatch of at least 2 (got {batch}): each prompt is paired with another example's completion");
        if (!mask.shape.SequenceEqual(policy.shape)) throw new ArgumentException($"mask must be [{batch}, {tokens}] like the policy log-probs");
        if (referenceTokens is not null && !referenceTokens.shape.SequenceEqual(policy.shape))
            throw new ArgumentException($"reference log-probs must be [{batch}, {tokens}] like the policy log-probs");
        if (referenceSums is not null && (referenceSums.dim() != 1 || referenceSums.shape[0] != batch))
            throw new ArgumentException($"reference sums must be [{batch}]");
        var device = policy.device;
        foreach (var t in new[] { referenceTokens, referenceSums, mask })
            if (t is not null && !LogProbKernels.SameDevice(t, policy)) throw new ArgumentException($"all inputs must be on {device}");

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var p = policy.detach().to(ScalarType.Float32).contiguous();
        var r = referenceTokens?.detach().to(ScalarType.Float32).contiguous();
        var rs = referenceSums?.detach().to(ScalarType.Float32).contiguous();
        var m = (mask.dtype == ScalarType.Bool ? mask : mask.ne(0)).contiguous();
        var policySums = empty(new[] { batch }, ScalarType.Float32, device);
        var referenceOut = empty(new[] { batch }, ScalarType.Float32, device);
        double meanRaw, z0;
        if (device.type == DeviceType.CUDA)
        {
            if (tokens > int.MaxValue || batch > int.MaxValue) throw new EngineException("microbatch too large for the CUDA z0 kernel");
            (meanRaw, z0) = CudaKernels.KlZ0(p, r, rs, m, policySums, referenceOut);
        }
        else if (device.type == DeviceType.CPU)
        {
            double* stats = stackalloc double[2];
            NativeKernels.KlZ0(TensorMemory.DataPointer(p), r is null ? IntPtr.Zero : TensorMemory.DataPointer(r),
                rs is null ? IntPtr.Zero : TensorMemory.DataPointer(rs), TensorMemory.DataPointer(m), batch, tokens,
                TensorMemory.DataPointer(policySums), TensorMemory.DataPointer(referenceOut), stats);
            (meanRaw, z0) = (stats[0], stats[1]);
        }
        else throw new EngineException($"the z0 kernel runs on CPU or CUDA tensors (got {device})");
        return new KlResult(policySums.MoveToOuterDisposeScope(), referenceOut.MoveToOuterDisposeScope(), meanRaw, z0);
    }
}
