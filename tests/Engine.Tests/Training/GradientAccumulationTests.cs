using System.Text.Json;
using Engine.Data;
using Engine.Kernels;
using Engine.Methods;
using Engine.Tests.Infrastructure;
using Engine.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Tests.Training;

/// <summary>
/// How an optimizer step combines its micro-batches (TrainingSession.TrainStep with MicroBatchWeights). SFT follows
/// transformers' Trainer with num_items_in_batch (TRL's SFTTrainer): Σ token NLL over the step ÷ the step's token
/// count, so accumulating micro-batches is the same step as one big batch. DPO/KTO follow TRL's trainers, which set
/// model_accepts_loss_kwargs = False: each micro-batch's mean loss ÷ the number of micro-batches. The loss reported
/// (and logged) is the one that was differentiated.
/// </summary>
public class GradientAccumulationTests
{
    static TrainingSession Open(TempDir dir, string method, string data, int microBatch, string name, string? reference = null) =>
        TrainingSession.Open(new TrainingOptions
        {
            Step = new StepSettings
            {
                Method = AlignmentMethods.Parse(method), Model = SharedData.Require(SharedData.Stories), ReferenceModel = reference,
                MicroBatch = microBatch, Head = LogProbMode.Naive,
            },
            DataPath = data, OutputDir = Directory.CreateDirectory(dir.File(name)).FullName, Seed = 3, MaxGradNorm = 1e9,
        }, new SessionData.Files(), SilentObserver.Instance);

    /// <summary>Σ log p and the count of the completion tokens of a batch, from the full logits (a plain log_softmax).</summary>
    static (double LogpSum, double Tokens) NaiveCompletionLogps(TrainingSession s, SequenceBatch b)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var lp = F.log_softmax(s.Policy.Forward(b.InputIds).to(ScalarType.Float64), -1);
        var labels = b.Labels.narrow(1, 1, b.Length - 1);
        var mask = labels.ne(SequenceBatch.IgnoreIndex);
        var picked = lp.narrow(1, 0, b.Length - 1).gather(2, where(mask, labels, zeros_like(labels)).unsqueeze(2)).squeeze(2);
        return ((picked * mask).sum().item<double>(), mask.sum().item<long>());
    }

    [SkippableFact]
    public void Sft_divides_the_steps_summed_token_nll_by_its_token_count()
    {
        using var dir = new TempDir();
        // A long likely completion and a short unlikely one: their per-token NLLs and lengths differ, so a mean of
        // per-micro-batch means differs from the token mean.
        string data = dir.File("sft.jsonl");
        File.WriteAllLines(data, new[]
        {
            (" Lily", " saw a big red ball in the park. She ran to get it and played with her friend all day."),
            (" Tom", " zqx vwk jjy."),
        }.Select(r => JsonSerializer.Serialize(new { prompt = "Once upon a time," + r.Item1, completion = r.Item2 })));

        using var accumulated = Open(dir, "sft", data, microBatch: 1, "a");
        using var together = Open(dir, "sft", data, microBatch: 2, "b");
        // The first step's two rows, scored independently before any update.
        var first = accumulated.Train.Batches(1, DataPosition.Start).Take(2).Select(b =>
        {
            using (b) return NaiveCompletionLogps(accumulated, ((CompletionBatch)b).Sequences);
        }).ToList();
        double tokenMean = -first.Sum(f => f.LogpSum) / first.Sum(f => f.Tokens);
        double meanOfMeans = first.Average(f => -f.LogpSum / f.Tokens);
        Assert.True(Math.Abs(tokenMean - meanOfMeans) > 0.05 * tokenMean, "the rows' lengths make the two normalisations differ");

        using var a = accumulated.Train.Batches(1, DataPosition.Start).GetEnumerator();
        using var b = together.Train.Batches(1, DataPosition.Start).GetEnumerator();
        var stepA = accumulated.TrainStep(a, gradAccum: 2, learningRate: 1e-4)!;
        var stepB = together.TrainStep(b, gradAccum: 1, learningRate: 1e-4)!;
        Assert.Equal(2, stepA.MicroBatches);
        Assert.Equal(tokenMean, stepA.Loss, 1e-5 * tokenMean);
        Assert.Equal(stepA.Loss, stepA.Metrics.Value("loss"), 1e-12);
        // The same gradient as one micro-batch of both rows.
        Assert.Equal(stepB.Loss, stepA.Loss, 1e-5 * tokenMean);
        Assert.Equal(stepB.GradNorm, stepA.GradNorm, 1e-4 * stepB.GradNorm);
    }

    [SkippableFact]
    public void Dpo_averages_micro_batch_means_and_logs_that_loss()
    {
        using var dir = new TempDir();
        var pairs = StoryPreferences.Pairs(3, seed: 8);
        string data = StoryPreferences.WritePaired(dir.File("pairs.jsonl"), pairs);
        // A reference other than the policy, so the pairs' losses differ (with the policy as reference all are log 2).
        string reference = Gguf.TestModels.PerturbedStories(dir.File("ref"));
        using var session = Open(dir, "dpo", data, microBatch: 2, "dpo", reference);
        // Micro-batches of 2 pairs and 1 pair: TRL's step loss is (mean(l1, l2) + l3) / 2, not (l1 + l2 + l3) / 3.
        var perMicro = new List<(double Loss, int Pairs)>();
        foreach (var batch in session.Train.Batches(1, DataPosition.Start))
            using (batch)
            using (no_grad())
            using (var scope = NewDisposeScope())
                perMicro.Add((session.Step.Compute(batch, eval: false).Loss.item<float>(), batch.Examples));
        Assert.Equal(new[] { 2, 1 }, perMicro.Select(m => m.Pairs));

        using var e = session.Train.Batches(1, DataPosition.Start).GetEnumerator();
        var step = session.TrainStep(e, gradAccum: 2, learningRate: 1e-6)!;
        double expected = perMicro.Average(m => m.Loss);
        Assert.True(Math.Abs(expected - perMicro.Sum(m => m.Loss * m.Pairs) / 3) > 1e-4, "the per-pair mean differs, so the test can tell them apart");
        Assert.Equal(expected, step.Loss, 1e-5);
        Assert.Equal(step.Loss, step.Metrics.Value("loss"), 1e-12);
    }
}
