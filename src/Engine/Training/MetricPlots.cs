namespace Engine.Training;

/// <summary>PNG line plots of a run's metric curves (ScottPlot), one file per group of related metrics.</summary>
public static class MetricPlots
{
    public static readonly (string File, string Title, string[] Metrics)[] Groups =
    {
        ("loss.png", "loss", new[] { "loss", "eval_loss" }),
        ("rewards.png", "rewards", new[] { "rewards/chosen", "rewards/rejected", "rewards/margins" }),
        ("accuracy.png", "reward accuracy", new[] { "rewards/accuracies", "eval_rewards/accuracies" }),
        ("kl.png", "KL estimate (z0)", new[] { "kl" }),
        ("logps.png", "sequence log-probs", new[] { "logps/chosen", "logps/rejected" }),
        ("lr.png", "learning rate", new[] { "learning_rate" }),
    };

    /// <summary>Writes the plots that have data; returns the files written.</summary>
    public static List<string> Write(MetricsLog log, string directory)
    {
        var written = new List<string>();
        foreach (var (file, title, metrics) in Groups)
        {
            var series = metrics.Select(m => (m, log.Series(m))).Where(s => s.Item2.Count > 0).ToList();
            if (series.Count == 0) continue;
            var plot = new ScottPlot.Plot();
            foreach (var (name, points) in series)
            {
                var line = plot.Add.Scatter(points.Select(p => p.Step).ToArray(), points.Select(p => p.Value).ToArray());
                line.LegendText = name;
                line.MarkerSize = points.Count > 50 ? 0 : 4;
            }
            plot.Title(title);
            plot.XLabel("step");
            if (series.Count > 1) plot.ShowLegend();
            string path = System.IO.Path.Combine(directory, file);
            plot.SavePng(path, 640, 400);
            written.Add(path);
        }
        return written;
    }
}
