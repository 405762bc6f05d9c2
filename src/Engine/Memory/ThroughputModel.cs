using Engine.Kernels;
using Engine.Models;
using Engine.Training;

namespace Engine.Memory;

/// <summary>
/// A relative estimate of training throughput, used only to rank configurations that fit. It counts the FLOPs of
/// one token's step (6 × matmul parameters for forward + backward, causal attention, the extra forwards of
/// checkpointing, a resident reference and KTO's mismatched pairs, the chunked head's recomputed logits) and
/// divides by a device rate that depends on the precision and on how full the micro-step keeps the device.
/// The constants are stated assumptions, not measurements of a particular GPU.
/// </summary>
public static class ThroughputModel
{
    /// <summary>bf16 matmuls run at least twice as fast as fp32 on tensor-core GPUs (2.2× on this CPU: environment.md).</summary>
    public const double F32Slowdown = 2.0;

    /// <summary>Tokens per micro-step at which a GPU reaches half its matmul rate (small micro-batches underuse it).</summary>
    public const double HalfUtilisationTokens = 2048;

    /// <summary>
    /// The naive head makes ~6 extra passes over fp32 [M, V] buffers (log_softmax, gather, their backward); memory
    /// traffic we count as 4·V·H FLOP-equivalents per token (about two thirds of the head's own matmul work).
    /// </summary>
    public const double NaiveHeadExtraVH = 4;

    /// <summary>Relative tokens per second (arbitrary units; only ratios mean anything).</summary>
    public static double TokensPerSecond(LlamaConfig c, PlannedStep s)
    {
        double h = c.HiddenSize, v = c.VocabSize;
        double head = v * h;
        double layers = c.NumLayers * ((double)h * c.QueryDim * 2 + 2.0 * h * c.KvDim + 3.0 * h * c.IntermediateSize);
        double matmul = layers + head;
        double attention = 6.0 * c.NumLayers * s.SeqLen * c.QueryDim; // causal: half of 12·T·d per layer
        double perToken = 6 * matmul + attention;
        if (s.ActivationCheckpointing) perToken += 2 * layers + attention / 3;
        // Per policy row: KTO's no-grad mismatched forward, and the reference log-probs (a resident model runs every
        // step; the cached pre-pass runs once over the data, the same FLOPs for one epoch, so the two cost alike and
        // memory decides between them).
        var cost = s.Cost;
        perToken += 2 * matmul * (cost.NoGradPolicyRows + cost.ReferenceRows) / cost.PolicyRows;
        perToken += s.Head switch
        {
            LogProbMode.Chunked => 2 * head,
            LogProbMode.Naive => NaiveHeadExtraVH * head,
            _ => 0,
        };
        double tokens = (double)s.Rows * s.SeqLen;
        double utilisation = tokens / (tokens + HalfUtilisationTokens);
        double slowdown = s.Precision == Precision.F32 ? F32Slowdown : 1.0;
        return 1e12 * utilisation / (perToken * slowdown);
    }

    /// <summary>
    /// Quality preferences applied to the ranking: pure bf16 (no fp32 master weights: small updates round away)
    /// and bf16 Adam moments are taken only when they buy more than 15% / 5% throughput.
    /// </summary>
    public static double Preference(PlannedStep s) =>
        (s.Precision == Precision.Bf16Pure ? 0.85 : 1.0) * (s.Bf16OptimizerStates ? 0.95 : 1.0);
}
