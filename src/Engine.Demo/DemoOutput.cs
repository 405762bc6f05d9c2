namespace Engine.Demo;

/// <summary>
/// The demo's output folder. The demo replaces only a folder it wrote itself: a new or empty folder, or an earlier
/// demo run (it carries <see cref="MarkerFile"/>, listing what the demo wrote). Anything else is refused and left
/// untouched — `engine demo --out ~` must never delete a home directory. On a re-run only the entries the earlier run
/// listed are removed; files a user added beside them stay.
/// </summary>
public static class DemoOutput
{
    public const string MarkerFile = ".engine-demo";

    /// <summary>What a demo run writes at the top of its folder.</summary>
    public static readonly IReadOnlyList<string> Entries = new[]
    {
        "data", "init", "sft", "kto", "dpo", "report.md", "desirable-rate.png", MarkerFile,
    };

    public static void Prepare(string directory)
    {
        if (File.Exists(directory)) throw new EngineException($"{directory}: --out is a file, not a folder");
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            string marker = Path.Combine(directory, MarkerFile);
            if (!File.Exists(marker))
                throw new EngineException($"{directory}: the folder is not empty and is not an earlier demo run (no {MarkerFile}); " +
                    "choose a new or empty --out. Nothing was changed.");
            var listed = File.ReadAllLines(marker).Where(Entries.Contains).ToList();
            foreach (var entry in listed.Where(e => e != MarkerFile))
            {
                string path = Path.Combine(directory, entry);
                if (Directory.Exists(path)) Directory.Delete(path, true);
                else if (File.Exists(path)) File.Delete(path);
            }
        }
        Directory.CreateDirectory(directory);
        File.WriteAllLines(Path.Combine(directory, MarkerFile), Entries);
    }
}
