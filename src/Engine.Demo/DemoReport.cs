using System.Globalization;
using System.Text;
using Engine.Training;

namespace Engine.Demo;

/// <summary>runs/demo/report.md: the numbers, the plots and sample generations of one demo run.</summary>
public static class DemoReport
{
    static string F(double v, string format = "0.000") =>
        double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : $"{v.ToString(CultureInfo.InvariantCulture)} (non-finite!)";

    public static string Write(DemoOptions o, string basePath, LabelledSamples labelled, IReadOnlyList<SampleJudgement> judgements,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, double>> heldOut, TrainingSummary kto, TrainingSummary dpo, TimeSpan elapsed)
    {
        string dir = o.OutputDir;
        string ratesPlot = WriteRatePlot(judgements, Path.Combine(dir, "desirable-rate.png"));
        var md = new StringBuilder();
        md.AppendLine("# Engine demo: KTO and DPO on a lexicon-judged preference set\n");
        md.AppendLine(o.ModelPath is null
            ? $"Base model: a {o.ScratchConfig.NumLayers}-layer Llama (hidden {o.ScratchConfig.HiddenSize}) trained from scratch by SFT " +
              $"on {o.CorpusSize} generated stories ({o.SftSteps} steps), half of which end kindly and half hurtfully."
            : $"Base model: `{o.ModelPath}` (pretrained; no SFT step).");
        md.AppendLine($"\nJudge: a completion is *undesirable* when it contains a word of this lexicon (as the HONEST metric uses HurtLex): " +
            string.Join(", ", LexiconJudge.HurtfulWords.OrderBy(w => w)) + ".");
        md.AppendLine($"\nPreference data from {labelled.Samples} base-model samples ({labelled.Desirable} desirable): " +
            $"KTO {labelled.KtoTrainRows} training / {labelled.KtoEvalRows} held-out rows; DPO {labelled.DpoTrainPairs} training / {labelled.DpoEvalPairs} held-out pairs " +
            "(held-out rows come from prompts never trained on). " +
            $"Both runs: {o.AlignSteps} steps, batch {o.BatchSize}, β {o.Beta}, lr KTO {o.KtoLearningRate} / DPO {o.DpoLearningRate}, reference = base (cached log-probs).\n");

        md.AppendLine("## Judged desirable rate on fresh samples\n");
        md.AppendLine($"{o.EvalPrompts} new prompts × {o.EvalSamplesPerPrompt} samples each, temperature 1. Interval: Wilson 95%. " +
            "KL to base: mean over the model's own samples of log π(y|x) − log π_base(y|x) (nats per completion).\n");
        bool scratch = o.ModelPath is null;
        if (scratch)
            md.AppendLine("Well-formed: the completion is exactly one of the corpus's endings (a fluency check: a policy could dodge the judge with gibberish).\n");
        md.AppendLine("| model | desirable | rate | 95% interval | KL to base |" + (scratch ? " well-formed |" : ""));
        md.AppendLine("| --- | --- | --- | --- | --- |" + (scratch ? " --- |" : ""));
        foreach (var j in judgements)
            md.AppendLine($"| {j.Model} | {j.Desirable}/{j.Total} | {F(j.Rate)} | [{F(j.Low)}, {F(j.High)}] | {F(j.KlToBase)} |" +
                (scratch ? $" {j.WellFormed}/{j.Total} |" : ""));
        md.AppendLine($"\n![desirable rate]({Path.GetFileName(ratesPlot)})\n");

        md.AppendLine("## Held-out preference pairs (the seed paper's Table 1 columns)\n");
        md.AppendLine("Each model scored against the base as reference on the held-out DPO pairs (β as in training).\n");
        var cols = Engine.Objectives.MetricNames.TableOne;
        md.AppendLine("| model | " + string.Join(" | ", cols.Select(c => c.Header)) + " |");
        md.AppendLine("| --- |" + string.Concat(cols.Select(_ => " --- |")));
        foreach (var (name, m) in heldOut)
            md.AppendLine($"| {name} | " + string.Join(" | ", cols.Select(c => m.TryGetValue(c.Metric, out var v) ? F(v) : "-")) + " |");

        md.AppendLine("\n## Training curves\n");
        foreach (var (name, summary) in new[] { ("KTO", kto), ("DPO", dpo) })
        {
            md.AppendLine($"**{name}** ({summary.Steps} steps, {F(summary.TokensPerSecond, "0")} tokens/s): " +
                string.Join(" ", summary.Plots.Select(p => $"![{name} {Path.GetFileNameWithoutExtension(p)}]({Path.GetRelativePath(dir, p)})")));
            md.AppendLine();
        }
        string sftPlot = Path.Combine(dir, "sft", "loss.png");
        if (File.Exists(sftPlot)) md.AppendLine($"**SFT** loss: ![SFT loss](sft/loss.png)\n");

        md.AppendLine("## Sample generations (first prompts, first sample)\n");
        md.AppendLine("| prompt | " + string.Join(" | ", judgements.Select(j => j.Model)) + " |");
        md.AppendLine("| --- |" + string.Concat(judgements.Select(_ => " --- |")));
        int perPrompt = o.EvalSamplesPerPrompt;
        for (int i = 0; i < Math.Min(8, o.EvalPrompts); i++)
        {
            string Cell(SampleJudgement j)
            {
                var s = j.Samples[i * perPrompt];
                return (s.Desirable ? "✓ " : "✗ ") + s.Completion.Replace("|", "\\|").Replace("\n", " ").Trim();
            }
            md.AppendLine($"| {judgements[0].Samples[i * perPrompt].Prompt} | " + string.Join(" | ", judgements.Select(Cell)) + " |");
        }
        md.AppendLine($"\nTotal time: {elapsed:mm\\:ss}. Everything here is regenerated by `./build.sh demo` (seed {o.Seed}).");
        string path = Path.Combine(dir, "report.md");
        File.WriteAllText(path, md.ToString());
        return path;
    }

    static string WriteRatePlot(IReadOnlyList<SampleJudgement> judgements, string path)
    {
        var plot = new ScottPlot.Plot();
        for (int i = 0; i < judgements.Count; i++)
        {
            var j = judgements[i];
            var bar = plot.Add.Bar(position: i, value: j.Rate);
            bar.Bars[0].Error = (j.High - j.Low) / 2;
            bar.Bars[0].ValueBase = 0;
        }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, judgements.Count).Select(i => (double)i).ToArray(), judgements.Select(j => j.Model).ToArray());
        plot.Axes.SetLimitsY(0, 1.05);
        plot.Title("judged desirable rate (95% interval)");
        plot.SavePng(path, 480, 360);
        return path;
    }
}
