using System.Diagnostics;
using Engine.Kernels;
using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Bench;

public sealed record ForwardBackwardResult(
    string Model, string Dtype, long Parameters, int Batch, int SeqLen, double TokensPerSecond,
    double AchievedFlops, double MatmulFlops, double RatioToMatmul, double StepSeconds, long MatmulParameters)
{
    /// <summary>The same rate counting only parameters that take part in matmuls (the embedding lookup costs no FLOPs).</summary>
    public double AchievedMatmulParameterFlops => AchievedFlops * MatmulParameters / Parameters;
}

/// <summary>
/// Training-step throughput (forward + backward of a next-token loss) on a random-weight model, reported next
/// to the matmul rate measured in the same run. FLOPs per token are counted as 6 × parameters.
/// </summary>
public static class ForwardBackwardBench
{
    public static ForwardBackwardResult Run(string preset, ScalarType dtype, int batch, int seqLen, int steps, double matmulFlops)
    {
        var config = ModelPresets.Get(preset);
        using var model = new LlamaForCausalLM(config, dtype);
        model.InitializeWeights(seed: 1);
        var gen = new Generator(1234);
        var times = new List<double>();
        for (int step = 0; step < steps + 1; step++)
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
            if (step > 0) times.Add(sw.Elapsed.TotalSeconds); // the first step warms up allocators
        }
        times.Sort();
        double median = times[times.Count / 2];
        long tokens = (long)batch * seqLen;
        long parameters = config.ParameterCount();
        double achieved = 6.0 * parameters * tokens / median;
        return new ForwardBackwardResult(preset, TensorMemory.DtypeName(dtype), parameters, batch, seqLen,
            tokens / median, achieved, matmulFlops, achieved / matmulFlops, median,
            parameters - (config.TieWordEmbeddings ? 0 : (long)config.VocabSize * config.HiddenSize));
    }
}
