namespace Engine.Training;

/// <summary>
/// The output folder of a run: a new run refuses a folder that already holds one (metrics.jsonl, checkpoint-STEP,
/// final) unless told to resume it or to replace it; replacing removes only what a run writes there.
/// </summary>
public static class RunFolder
{
    public const string FinalDir = "final";

    /// <summary>The names in <paramref name="dir"/> that show a previous run.</summary>
    public static IReadOnlyList<string> PreviousRun(string dir)
    {
        if (!Directory.Exists(dir)) return Array.Empty<string>();
        var found = new List<string>();
        if (File.Exists(Path.Combine(dir, MetricsLog.FileName))) found.Add(MetricsLog.FileName);
        found.AddRange(Directory.GetDirectories(dir, CheckpointStore.Prefix + "*")
            .Where(d => CheckpointStore.StepOf(d) is not null).OrderBy(d => CheckpointStore.StepOf(d)).Select(Path.GetFileName)!);
        if (Directory.Exists(Path.Combine(dir, FinalDir))) found.Add(FinalDir);
        return found;
    }

    /// <summary>
    /// Before a new (not resumed) run: refuses a folder holding a previous run, or with <paramref name="overwrite"/>
    /// removes that run's files (metrics.jsonl, its checkpoints, final, TensorBoard event files, plots) and nothing else.
    /// The cached reference log-probs are kept: their file name is a hash of everything they depend on.
    /// </summary>
    /// <returns>what was removed (empty when nothing was there)</returns>
    public static IReadOnlyList<string> PrepareNewRun(string dir, bool overwrite)
    {
        var previous = PreviousRun(dir);
        if (previous.Count == 0) return Array.Empty<string>();
        if (!overwrite)
            throw new EngineException($"{dir} already holds a run ({string.Join(", ", previous)}): pass --resume {dir} to continue it, " +
                "or --overwrite-output-dir to replace it, or choose a new --out");

        // Check everything before deleting anything: a folder under our names that Engine did not write stops the whole removal.
        var checkpoints = CheckpointStore.List(dir);
        foreach (var name in previous.Where(n => CheckpointStore.StepOf(n) is not null))
            if (!checkpoints.Any(c => c.Name == name))
                throw new EngineException($"{Path.Combine(dir, name)} is not a checkpoint Engine wrote (no readable {CheckpointStore.StateFile} for its step); " +
                    "--overwrite-output-dir removes only a run's own files: move it away first");
        string final = Path.Combine(dir, FinalDir);
        // A full fine-tune's final is a model (config.json), a LoRA run's an adapter (adapter_config.json).
        if (Directory.Exists(final) && !File.Exists(Path.Combine(final, "config.json")) && !File.Exists(Path.Combine(final, Adapters.PeftAdapterFolder.ConfigFile)))
            throw new EngineException($"{final} is neither a model nor an adapter Engine wrote (no config.json or {Adapters.PeftAdapterFolder.ConfigFile}); " +
                "--overwrite-output-dir removes only a run's own files: move it away first");

        var removed = new List<string>();
        void RemoveFile(string path)
        {
            if (!File.Exists(path)) return;
            File.Delete(path);
            removed.Add(path);
        }
        RemoveFile(Path.Combine(dir, MetricsLog.FileName));
        foreach (var c in checkpoints)
        {
            CheckpointStore.Delete(c.Dir);
            removed.Add(c.Dir);
        }
        if (Directory.Exists(final))
        {
            Directory.Delete(final, true);
            removed.Add(final);
        }
        string events = Path.Combine(dir, TensorBoardLog.Folder);
        if (Directory.Exists(events))
        {
            foreach (var f in Directory.GetFiles(events, TensorBoardLog.EventFilePrefix + "*")) RemoveFile(f);
            if (!Directory.EnumerateFileSystemEntries(events).Any()) Directory.Delete(events);
        }
        foreach (var plot in MetricPlots.Groups) RemoveFile(Path.Combine(dir, plot.File));
        return removed;
    }
}
