using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Gguf;

/// <summary>
/// Recovers llama3 RoPE scaling parameters from the <c>rope_freqs</c> tensor llama.cpp's converter writes (one divisor
/// per frequency pair: 1, the factor, or a blend). Only the two wavelength thresholds original/low and original/high
/// shape the divisors (scaling original, low and high together changes nothing), so low_freq_factor is taken as 1; the
/// others follow from the blended pairs, or from Llama 3's own high_freq_factor of 4 when fewer than two pairs blend.
/// The result is accepted only when it reproduces every stored divisor.
/// </summary>
public static class Llama3RopeFit
{
    public static LlamaConfig FromFactors(LlamaConfig config, float[] factors, string source)
    {
        if (factors.All(f => f == 1f)) return config; // no scaling at all
        if (factors.Any(f => !(f >= 1f) || !float.IsFinite(f)))
            throw new EngineException($"{source}: {GgufArchitecture.RopeFrequencies} holds values below 1 or not finite: not llama3 scaling");
        double factor = factors.Max();
        using var scope = NewDisposeScope();
        var plain = RotaryTables.InverseFrequencies(new RopeSpec(config.RopeTheta), config.HeadDim, 0).data<float>().ToArray();
        var wavelengths = plain.Select(f => 2 * Math.PI / f).ToArray();
        // In the blended band 1/f = 1/F + (1 − 1/F)·(old/λ − low)/(high − low): linear in 1/λ.
        var blended = Enumerable.Range(0, factors.Length).Where(i => factors[i] > 1f && factors[i] < (float)factor).ToList();
        var candidates = new List<(double Old, double High)>();
        if (blended.Count >= 2)
        {
            int i = blended[0], j = blended[^1];
            double slope = (1 / factors[j] - 1 / factors[i]) / (1 / wavelengths[j] - 1 / wavelengths[i]);
            double intercept = 1 / factors[i] - slope / wavelengths[i];
            double highMinusLow = (1 - 1 / factor) / (1 / factor - intercept);
            double old = slope * highMinusLow / (1 - 1 / factor);
            candidates.Add((Math.Round(old), Math.Round(1 + highMinusLow, 6)));
            candidates.Add((old, 1 + highMinusLow));
        }
        else
        {
            // Fewer than two blended pairs: with high = 4, one blended pair fixes old; none bounds it between pairs.
            const double high = 4;
            if (blended.Count == 1)
            {
                int i = blended[0];
                double s = (1 / factors[i] - 1 / factor) / (1 - 1 / factor);
                double old = (1 + s * (high - 1)) * wavelengths[i];
                candidates.Add((Math.Round(old), high));
                candidates.Add((old, high));
            }
            else
            {
                // Unscaled pairs need λ < old/high, scaled ones λ > old: the smallest whole context in between.
                int lastKept = Array.FindLastIndex(factors, f => f == 1f);
                double lo = lastKept >= 0 ? wavelengths[lastKept] * high : 0;
                candidates.Add((Math.Floor(lo) + 1, high));
            }
        }
        foreach (var (old, high) in candidates)
        {
            if (!(old > 0) || !(high > 1) || old > int.MaxValue) continue;
            var fitted = config with
            {
                RopeScaling = RopeScalingKind.Llama3, RopeScalingFactor = factor, RopeLowFreqFactor = 1, RopeHighFreqFactor = high,
                RopeOriginalMaxPositions = (int)Math.Round(old),
            };
            using var inv = torch.tensor(plain);
            var again = RotaryTables.Llama3FrequencyFactors(fitted.GlobalRope, inv).data<float>().ToArray();
            if (again.Zip(factors).All(p => Math.Abs(p.First - p.Second) <= 1e-5 * p.Second)) return fitted;
        }
        throw new EngineException($"{source}: {GgufArchitecture.RopeFrequencies} does not follow llama3 RoPE scaling (the only per-frequency scaling supported)");
    }
}
