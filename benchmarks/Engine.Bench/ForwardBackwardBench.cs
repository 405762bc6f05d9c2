using System.Diagnostics;
using Engine.Kernels;
using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Bench;

/// <summary>
/// Forward+backward throughput over <see cref="Spread"/>s of repeated steps, with the matmul rate measured between
/// the steps (so both see the same load) and the ratio of their medians.
/// </summary>
public sealed record ForwardBackwardResult(
    string Model, string Dtype, long Parameters, long MatmulParameters, int Batch, int SeqLen,
    Spread StepSeconds, Spread MatmulFlops, Spread Bf16MatmulFlops)
{
    public long TokensPerStep => (long)Batch * SeqLen;
    /// <summary>Tokens/s at the fastest, median and slowest step.</summary>
    public Spread TokensPerSecond => new(TokensPerStep / StepSeconds.Max, TokensPerStep / StepSeconds.Median, TokensPerStep / StepSeconds.Min);
    /// <summary>6 × parameters per token at the median step.</summary>
    public double AchievedFlops => 6.0 * Parameters * TokensPerStep / StepSeconds.Median;
    /// <summary>The same rate counting only parameters that take part in matmuls (the embedding lookup costs no FLOPs).</summary>
    public double AchievedMatmulParameterFlops => AchievedFlops * MatmulParameters / Parameters;
    public double RatioToMatmul => AchievedFlops / MatmulFlops.Median;
    public double RatioToBf16Matmul => AchievedFlops / Bf16MatmulFlops.Median;
}

/// <summary>
/// Training-step throughput (forward + backward of a next-token loss) on a random-weight model, reported next
/// to the matmul rate measured in the same run. FLOPs per token are counted as 6 × parameters.
/// </summary>
public static class ForwardBackwardBench
{
    public static ForwardBackwardResult Run(string preset, ScalarType dtype, int batch, int seqLen, int repeat)
    {
        var config = ModelPresets.Get(preset);
        using var model = new LlamaForCausalLM(config, dtype);
        model.InitializeWeights(seed: 1);
        var gen = new Generator(1234);
        var steps = new List<double>();
        var matmul = new List<double>();
        var bf16Matmul = new List<double>();
        for (int step = 0; step < repeat + 1; step++)
        {
            using var scope = NewDisposeScope();
            var ids = randint(0, config.VocabSize, new long[] { batch, seqLen }, generator: gen);
            var sw = Stopwatch.StartNew();
            var hidden = model.ForwardHidden(ids);
            var h = hidden.narrow(1, 0, seqLen - 1).reshape(-1, config.HiddenSize);
            var labels = ids.narrow(1, 1, seqLen - 1).reshape(-1);
            using var lp = TokenLogProbs.FromHidden(h, model.LmHeadWeight, labels, LogProbMode.Naive);
            var loss = -lp.LogProbs.mean();
            loss.backward();
            foreach (var p in model.parameters()) p.grad?.zero_();
            if (step == 0) continue; // the first step warms up allocators
            steps.Add(sw.Elapsed.TotalSeconds);
            matmul.Add(MatmulRate.Measure(dtype, seconds: 0.25));
            bf16Matmul.Add(dtype == ScalarType.BFloat16 ? matmul[^1] : MatmulRate.Measure(ScalarType.BFloat16, seconds: 0.25));
        }
        long parameters = config.ParameterCount();
        return new ForwardBackwardResult(preset, TensorMemory.DtypeName(dtype), parameters,
            parameters - (config.TieWordEmbeddings ? 0 : (long)config.VocabSize * config.HiddenSize), batch, seqLen,
            Spread.Of(steps), Spread.Of(matmul), Spread.Of(bf16Matmul));
    }
}
