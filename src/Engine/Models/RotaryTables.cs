using Engine.Kernels;
using static TorchSharp.torch;

namespace Engine.Models;

/// <summary>
/// RoPE cos/sin for one forward's positions, in HF's rotate-half layout (frequencies repeated over the two halves).
/// Computed in fp32 like the reference, then cast to the compute dtype.
/// </summary>
public sealed class RotaryTables : IDisposable
{
    readonly Tensor _cos, _sin; // [B, 1, T, headDim]

    public RotaryTables(LlamaConfig c, Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var invFreq = InverseFrequencies(c);
        var pos = positionIds.to(ScalarType.Float32);
        if (c.RopeScaling == RopeScalingKind.Linear) pos = pos / c.RopeScalingFactor;
        var freqs = pos.unsqueeze(-1) * invFreq; // [B, T, hd/2]
        var emb = torch.cat(new[] { freqs, freqs }, -1).unsqueeze(1);
        _cos = emb.cos().to(dtype).MoveToOuterDisposeScope();
        _sin = emb.sin().to(dtype).MoveToOuterDisposeScope();
    }

    RotaryTables(Tensor cos, Tensor sin) { _cos = cos; _sin = sin; }

    /// <summary>
    /// A second handle to the same tables that outlives the forward's dispose scope (activation checkpointing
    /// re-runs layers during backward, after the forward has released its own handles).
    /// </summary>
    public RotaryTables Retain() => new(_cos.alias().DetachFromDisposeScope(), _sin.alias().DetachFromDisposeScope());

    public static Tensor InverseFrequencies(LlamaConfig c)
    {
        // 1 / theta^(2i/d), exponent computed from integer steps as HF does.
        var steps = torch.arange(0, c.HeadDim, 2, dtype: ScalarType.Int64).to(ScalarType.Float32) / c.HeadDim;
        return torch.pow(torch.tensor(c.RopeTheta, dtype: ScalarType.Float32), steps).reciprocal();
    }

    /// <summary>x: [B, heads, T, headDim].</summary>
    public Tensor Apply(Tensor x)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        var x1 = x.narrow(-1, 0, half);
        var x2 = x.narrow(-1, half, half);
        var rotated = torch.cat(new[] { -x2, x1 }, -1);
        return (x * _cos + rotated * _sin).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Queries [B, T, heads, headDim] and keys [B, T, kvHeads, headDim] rotated and returned as [B, heads, T, headDim]:
    /// by the fused in-place kernel when it applies (<see cref="LayerKernels.TryRope"/>), else by <see cref="Apply"/>.
    /// </summary>
    public (Tensor Q, Tensor K) ApplyToQueryKey(Tensor q, Tensor k) =>
        (StepProfiler.Run(OpClass.Rope, q, ApplyBthd), StepProfiler.Run(OpClass.Rope, k, ApplyBthd));

    Tensor ApplyBthd(Tensor x)
    {
        if (LayerKernels.Applies(x))
        {
            var (cos, sin) = HalfTables();
            if (LayerKernels.Rope(x, cos, sin) is { } rotated) return rotated.transpose(1, 2);
        }
        return Apply(x.transpose(1, 2));
    }

    Tensor? _cosHalf, _sinHalf;

    /// <summary>cos/sin as the fused kernel reads them: fp32 [B·T, headDim/2] (the tables repeat over the two halves).</summary>
    (Tensor Cos, Tensor Sin) HalfTables()
    {
        if (_cosHalf is null || _sinHalf is null)
        {
            long half = _cos.shape[^1] / 2;
            _cosHalf = _cos.squeeze(1).narrow(-1, 0, half).to(ScalarType.Float32).contiguous().reshape(-1, half).DetachFromDisposeScope();
            _sinHalf = _sin.squeeze(1).narrow(-1, 0, half).to(ScalarType.Float32).contiguous().reshape(-1, half).DetachFromDisposeScope();
        }
        return (_cosHalf, _sinHalf);
    }

    public void Dispose()
    {
        _cos.Dispose();
        _sin.Dispose();
        _cosHalf?.Dispose();
        _sinHalf?.Dispose();
    }
}
