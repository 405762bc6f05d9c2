using static Engine.Objectives.MetricNames;

namespace Engine.Training;

/// <summary>PNG line plots of a run's metric curves (ScottPlot), one file per group of related metrics.</summary>
public static class MetricPlots
{
    public static readonly (string File, string Title, string[] Metrics)[] Groups =
    {
        ("loss.png", "loss", new[] { Loss, EvalPrefix + Loss }),
        ("rewards.png", "rewards", new[] { RewardsChosen, RewardsRejected, RewardsMargins }),
        ("accuracy.png", "reward accuracy", new[] { RewardsAccuracies, EvalPrefix + RewardsAccuracies }),
        ("kl.png", "KL estimate (z0)", new[] { Kl }),
        ("logps.png", "sequence log-probs", new[] { LogpsChosen, LogpsRejected }),
        ("lr.png", "learning rate", new[] { LearningRate }),
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
