using System.Diagnostics;
using System.Text.Json;
using Engine.Data;
using Engine.Generation;
using Engine.Kernels;
using Engine.Methods;
using Engine.Models;
using Engine.Tokenization;
using Engine.Training;
using static TorchSharp.torch;

namespace Engine.Demo;

public sealed record DemoOptions
{
    public string OutputDir { get; init; } = "runs/demo";
    /// <summary>A pretrained model to align instead of training one from scratch (e.g. stories260K).</summary>
    public string? ModelPath { get; init; }
    public int Seed { get; init; } = 1234;
    public int CorpusSize { get; init; } = 8000;
    public int SftSteps { get; init; } = 800;
    public double SftLearningRate { get; init; } = 3e-3;
    public int SamplePrompts { get; init; } = 256;
    public int SamplesPerPrompt { get; init; } = 4;
    public int EvalPrompts { get; init; } = 128;
    public int EvalSamplesPerPrompt { get; init; } = 3;
    public int MaxNewTokens { get; init; } = 48;
    public int AlignSteps { get; init; } = 80;
    public int BatchSize { get; init; } = 16;
    public double KtoLearningRate { get; init; } = 1e-4;
    public double DpoLearningRate { get; init; } = 5e-5;
    public double Beta { get; init; } = 0.1;
    public Precision Precision { get; init; } = Precision.F32;
    public LogProbMode LogProb { get; init; } = LogProbMode.Fused;
    /// <summary>The from-scratch model's shape (a ~0.8M-parameter Llama).</summary>
    public LlamaConfig ScratchConfig { get; init; } = new()
    {
        HiddenSize = 128, IntermediateSize = 352, NumLayers = 4, NumHeads = 4, NumKvHeads = 2, HeadDim = 32,
        VocabSize = 0, MaxPositionEmbeddings = 256, RmsNormEps = 1e-5, RopeTheta = 10000, TieWordEmbeddings = true,
        BosTokenId = 1, EosTokenId = 2,
    };
}

/// <summary>Judged samples of one model on the fresh evaluation prompts.</summary>
public sealed record SampleJudgement(string Model, int Desirable, int Total, double Rate, double Low, double High, double KlToBase,
    int WellFormed, IReadOnlyList<(string Prompt, string Completion, bool Desirable)> Samples);

public sealed record DemoResult(string ReportPath, IReadOnlyList<SampleJudgement> Judgements,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, double>> HeldOut, TimeSpan Elapsed);

/// <summary>
/// The main job: (a) SFT a small Llama from scratch on a generated corpus, (b) sample completions and label them
/// with a lexicon judge into KTO rows and DPO pairs, (c) align with KTO and with DPO, (d) compare base, KTO and
/// DPO on fresh samples (judged desirable rate with a 95% interval, KL to the base) and on held-out rows
/// (Table 1 metrics), (e) write report.md with plots and sample generations.
/// </summary>
public sealed class DemoPipeline
{
    readonly DemoOptions _o;
    readonly Action<string> _log;
    readonly Func<ITrainingObserver> _observer;

    public DemoPipeline(DemoOptions options, Action<string>? log = null, Func<ITrainingObserver>? observer = null)
    {
        _o = options;
        _log = log ?? (_ => { });
        _observer = observer ?? (() => SilentObserver.Instance);
    }

    string Out(params string[] parts) => Path.Combine(new[] { _o.OutputDir }.Concat(parts).ToArray());

    public DemoResult Run()
    {
        var clock = Stopwatch.StartNew();
        DemoOutput.Prepare(_o.OutputDir);
        Directory.CreateDirectory(Out("data"));
        manual_seed(_o.Seed);

        string basePath = _o.ModelPath ?? TrainFromScratch();
        _log($"[b] sampling {_o.SamplePrompts} prompts × {_o.SamplesPerPrompt} from the base model and judging them");
        var (ktoTrain, ktoEval, dpoTrain, dpoEval, labelled) = BuildPreferenceData(basePath);

        _log("[c] aligning with KTO");
        var kto = Align(AlignmentMethods.Kto, basePath, ktoTrain, ktoEval, _o.KtoLearningRate);
        _log("[c] aligning with DPO");
        var dpo = Align(AlignmentMethods.Dpo, basePath, dpoTrain, dpoEval, _o.DpoLearningRate);

        _log($"[d] judging {_o.EvalPrompts} fresh prompts × {_o.EvalSamplesPerPrompt} for base, KTO and DPO");
        var prompts = StoryCorpus.Prompts(_o.EvalPrompts, _o.Seed + 2);
        var judgements = new List<SampleJudgement>();
        using (var baseModel = ModelLoader.Load(basePath, requireTokenizer: true))
        {
            judgements.Add(Judge("base", baseModel, baseModel, prompts));
            foreach (var (name, path) in new[] { ("KTO", kto.FinalModelDir!), ("DPO", dpo.FinalModelDir!) })
            {
                using var m = ModelLoader.Load(path, requireTokenizer: true);
                judgements.Add(Judge(name, m, baseModel, prompts));
            }
        }
        var heldOut = new Dictionary<string, IReadOnlyDictionary<string, double>>();
        foreach (var (name, path) in new[] { ("base", basePath), ("KTO", kto.FinalModelDir!), ("DPO", dpo.FinalModelDir!) })
            heldOut[name] = ModelEvaluation.Run(new EvaluationOptions
            {
                Step = Step(AlignmentMethods.Dpo, path) with { ReferenceModel = basePath },
                DataPath = dpoEval,
            });

        _log("[e] writing the report");
        string report = DemoReport.Write(_o, basePath, labelled, judgements, heldOut, kto, dpo, clock.Elapsed);
        return new DemoResult(report, judgements, heldOut, clock.Elapsed);
    }

    string TrainFromScratch()
    {
        _log($"[a] generating {_o.CorpusSize} stories and training a Llama from scratch (SFT, {_o.SftSteps} steps)");
        var stories = StoryCorpus.Generate(_o.CorpusSize, _o.Seed);
        string corpus = Out("data", "sft.jsonl");
        File.WriteAllLines(corpus, stories.Select(s => JsonSerializer.Serialize(new { prompt = s.Prompt, completion = s.Completion, label = true })));
        var tokenizer = DemoTokenizer.Create(StoryCorpus.Alphabet());
        var config = _o.ScratchConfig with { VocabSize = tokenizer.VocabSize };
        using (var model = new LlamaForCausalLM(config))
        {
            model.InitializeWeights(_o.Seed);
            ModelLoader.Save(model, tokenizer, Out("init"), ScalarType.Float32);
        }
        var summary = new AlignmentTrainer(new TrainingOptions
        {
            Step = Step(AlignmentMethods.Sft, Out("init")) with { Objective = new() },
            DataPath = corpus, OutputDir = Out("sft"), LearningRate = _o.SftLearningRate,
            MaxSteps = _o.SftSteps, LrScheduler = LrSchedulerKind.Cosine, WarmupSteps = _o.SftSteps / 20,
            Seed = _o.Seed, WeightDecay = 0.01,
        }, _observer()).Run();
        return summary.FinalModelDir!;
    }

    (string KtoTrain, string KtoEval, string DpoTrain, string DpoEval, LabelledSamples Labelled) BuildPreferenceData(string basePath)
    {
        var prompts = StoryCorpus.Prompts(_o.SamplePrompts, _o.Seed + 1);
        using var model = ModelLoader.Load(basePath, requireTokenizer: true);
        var samples = Sample(model, prompts, _o.SamplesPerPrompt, _o.Seed + 11);
        // Held-out rows come from held-out prompts, so eval pairs share no prompt with training.
        int evalPrompts = Math.Max(2, prompts.Count / 8);
        var heldOut = new HashSet<string>(prompts.Take(evalPrompts));
        var kto = new List<string>[] { new(), new() };
        var dpo = new List<string>[] { new(), new() };
        int desirable = 0;
        foreach (var group in samples.GroupBy(s => s.Prompt))
        {
            int split = heldOut.Contains(group.Key) ? 1 : 0;
            var judged = group.Select(s => (s.Completion, Good: LexiconJudge.IsDesirable(s.Completion))).ToList();
            foreach (var (c, good) in judged)
            {
                kto[split].Add(JsonSerializer.Serialize(new { prompt = group.Key, completion = c, label = good }));
                if (good) desirable++;
            }
            var goods = judged.Where(j => j.Good).Select(j => j.Completion).Distinct().ToList();
            var bads = judged.Where(j => !j.Good).Select(j => j.Completion).Distinct().ToList();
            for (int i = 0; i < Math.Min(goods.Count, bads.Count); i++)
                dpo[split].Add(JsonSerializer.Serialize(new { prompt = group.Key, chosen = goods[i], rejected = bads[i] }));
        }
        if (dpo[0].Count < _o.BatchSize || dpo[1].Count == 0 || desirable == 0 || desirable == samples.Count)
            throw new EngineException($"the base model's samples are too one-sided to align ({desirable} of {samples.Count} desirable, {dpo[0].Count} training pairs)");
        string Write(string name, List<string> lines) { string p = Out("data", name); File.WriteAllLines(p, lines); return p; }
        var labelled = new LabelledSamples(samples.Count, desirable, kto[0].Count, kto[1].Count, dpo[0].Count, dpo[1].Count);
        return (Write("kto-train.jsonl", kto[0]), Write("kto-eval.jsonl", kto[1]), Write("dpo-train.jsonl", dpo[0]), Write("dpo-eval.jsonl", dpo[1]), labelled);
    }

    /// <summary>Sequences of the demo's corpus fit in 128 tokens; β applies to the alignment methods.</summary>
    StepSettings Step(AlignmentMethod method, string model) => new()
    {
        Method = method, Model = model, Objective = new ObjectiveOptions { Beta = _o.Beta }, MicroBatch = _o.BatchSize, MaxLength = 128,
        Precision = _o.Precision, Head = _o.LogProb,
    };

    TrainingSummary Align(AlignmentMethod method, string basePath, string train, string eval, double lr) =>
        new AlignmentTrainer(new TrainingOptions
        {
            Step = Step(method, basePath), DataPath = train, EvalDataPath = eval, OutputDir = Out(method.Name), LearningRate = lr,
            MaxSteps = _o.AlignSteps, LrScheduler = LrSchedulerKind.Linear,
            WarmupSteps = _o.AlignSteps / 10, EvalSteps = Math.Max(1, _o.AlignSteps / 4), Seed = _o.Seed,
        }, _observer()).Run();

    List<(string Prompt, string Completion, int[] PromptIds, int[] CompletionIds)> Sample(LoadedModel model, IReadOnlyList<string> prompts, int perPrompt, int seed)
    {
        var tok = model.RequireTokenizer();
        var requests = prompts.SelectMany(p => Enumerable.Repeat(p, perPrompt)).ToList();
        var ids = requests.Select(p => tok.Encode(p)).ToList();
        var outputs = new List<int[]>();
        const int chunk = 64;
        for (int i = 0; i < ids.Count; i += chunk)
            outputs.AddRange(new TextGenerator(model.Model, tok.EosId, tok.PadId ?? 0).Generate(ids.Skip(i).Take(chunk).ToList(),
                new SamplingOptions { MaxNewTokens = _o.MaxNewTokens, Temperature = 1.0, TopP = 1.0, Seed = seed + i }));
        return requests.Select((p, i) => (p, tok.Decode(outputs[i]), ids[i], outputs[i])).ToList();
    }

    SampleJudgement Judge(string name, LoadedModel model, LoadedModel baseModel, IReadOnlyList<string> prompts)
    {
        var samples = Sample(model, prompts, _o.EvalSamplesPerPrompt, _o.Seed + 22);
        int good = samples.Count(s => LexiconJudge.IsDesirable(s.Completion));
        var (low, high) = WilsonInterval(good, samples.Count);
        double kl = ReferenceEquals(model, baseModel) ? 0 : KlToBase(model, baseModel, samples);
        int wellFormed = samples.Count(s => StoryCorpus.IsWellFormed(s.Completion));
        return new SampleJudgement(name, good, samples.Count, (double)good / samples.Count, low, high, kl, wellFormed,
            samples.Select(s => (s.Prompt, s.Completion, LexiconJudge.IsDesirable(s.Completion))).ToList());
    }

    /// <summary>
    /// KL(π ‖ π_base) estimated on π's own samples: mean over samples of log π(y|x) − log π_base(y|x)
    /// (pure sampling at temperature 1, so the estimate is unbiased; EOS excluded from y).
    /// </summary>
    double KlToBase(LoadedModel policy, LoadedModel baseModel, List<(string Prompt, string Completion, int[] PromptIds, int[] CompletionIds)> samples)
    {
        using var noGrad = no_grad();
        double total = 0;
        int n = 0;
        var rows = samples.Where(s => s.CompletionIds.Length > 0).Select(s => (s.PromptIds, s.CompletionIds)).ToList();
        for (int i = 0; i < rows.Count; i += _o.BatchSize)
        {
            using var scope = NewDisposeScope();
            using var batch = SequenceBatch.Build(rows.Skip(i).Take(_o.BatchSize).ToList(), baseModel.RequireTokenizer().PadId ?? 0);
            var p = SequenceScorer.Score(policy.Model, batch, _o.LogProb).LogpSum;
            var q = SequenceScorer.Score(baseModel.Model, batch, _o.LogProb).LogpSum;
            total += (p - q).sum().item<float>();
            n += batch.Rows;
        }
        return n == 0 ? 0 : total / n;
    }

    /// <summary>Wilson score interval for a binomial proportion at 95%.</summary>
    public static (double Low, double High) WilsonInterval(int successes, int trials, double z = 1.959964)
    {
        if (trials == 0) return (0, 1);
        double p = (double)successes / trials, z2 = z * z;
        double centre = (p + z2 / (2 * trials)) / (1 + z2 / trials);
        double half = z * Math.Sqrt(p * (1 - p) / trials + z2 / (4.0 * trials * trials)) / (1 + z2 / trials);
        return (Math.Max(0, centre - half), Math.Min(1, centre + half));
    }
}

/// <summary>What the judge made of the base model's samples.</summary>
public sealed record LabelledSamples(int Samples, int Desirable, int KtoTrainRows, int KtoEvalRows, int DpoTrainPairs, int DpoEvalPairs);
