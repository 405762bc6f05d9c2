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

    /// <summary>The tables of the model's full-attention layers.</summary>
    public RotaryTables(LlamaConfig c, Tensor positionIds, ScalarType dtype) : this(c.GlobalRope, c.HeadDim, positionIds, dtype) { }

    public RotaryTables(RopeSpec rope, int headDim, Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        // Dynamic NTK stretches the base once the sequence outgrows the trained context, like HF's dynamic_rope_update
        // for this forward's longest position (HF also remembers the longest sequence seen in earlier calls).
        long seqLen = rope.Scaling == RopeScalingKind.Dynamic ? positionIds.max().item<long>() + 1 : 0;
        var invFreq = InverseFrequencies(rope, headDim, seqLen);
        var pos = positionIds.to(ScalarType.Float32);
        if (rope.Scaling == RopeScalingKind.Linear) pos = pos / rope.Factor;
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

    /// <summary>
    /// 1 / theta^(2i/d) in fp32 (exponent from integer steps, as HF computes it), then the scaling's change to it:
    /// llama3 divides low frequencies by the factor and blends the band between; dynamic NTK raises the base for
    /// sequences longer than the trained context (<paramref name="seqLen"/>). Linear scaling divides positions instead.
    /// </summary>
    public static Tensor InverseFrequencies(RopeSpec rope, int headDim, long seqLen)
    {
        using var scope = NewDisposeScope();
        double theta = rope.Theta;
        if (rope.Scaling == RopeScalingKind.Dynamic)
        {
            long len = Math.Max(seqLen, rope.MaxPositions);
            theta *= Math.Pow(rope.Factor * len / rope.MaxPositions - (rope.Factor - 1), headDim / (headDim - 2.0));
        }
        var steps = torch.arange(0, headDim, 2, dtype: ScalarType.Int64).to(ScalarType.Float32) / headDim;
        var invFreq = torch.pow(torch.tensor(theta, dtype: ScalarType.Float32), steps).reciprocal();
        if (rope.Scaling == RopeScalingKind.Llama3) invFreq = invFreq / Llama3FrequencyFactors(rope, invFreq);
        return invFreq.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// llama3 scaling as the divisor of each inverse frequency (1 for short wavelengths, the factor for long ones,
    /// a blend between): exactly the <c>rope_freqs</c> tensor llama.cpp's converter writes, computed in fp32.
    /// </summary>
    public static Tensor Llama3FrequencyFactors(RopeSpec rope, Tensor invFreq)
    {
        using var scope = NewDisposeScope();
        double old = rope.OriginalMaxPositions;
        double lowWavelen = old / rope.LowFreqFactor, highWavelen = old / rope.HighFreqFactor;
        var wavelen = (2 * Math.PI) / invFreq; // fp32, as the converter's 2·π / freq on an fp32 tensor element
        var smooth = (old / wavelen - rope.LowFreqFactor) / (rope.HighFreqFactor - rope.LowFreqFactor);
        var blended = ((1 - smooth) / rope.Factor + smooth).reciprocal();
        var factors = torch.where(wavelen < highWavelen, torch.ones_like(invFreq),
            torch.where(wavelen > lowWavelen, torch.full_like(invFreq, rope.Factor), blended));
        return factors.MoveToOuterDisposeScope();
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
    internal (Tensor Cos, Tensor Sin) HalfTables()
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
