namespace Engine.Tests.Infrastructure;

/// <summary>
/// Locates the reference data folder <c>../shared</c> (beside the repository). Tests that need it call
/// <see cref="Require"/>, which skips them with a clear reason when it is absent (a user's fresh clone).
/// </summary>
public static class SharedData
{
    public static string RepoRoot { get; } = FindRepoRoot();

    static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("could not find the repository root (Engine.sln)");
    }

    public static string Root => Environment.GetEnvironmentVariable("ENGINE_SHARED_DIR") is { Length: > 0 } env
        ? env : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    public static string PathOf(string relative) => Path.Combine(Root, relative);

    /// <summary>Skips the calling test unless the shared file or folder exists; returns its full path.</summary>
    public static string Require(string relative)
    {
        string p = PathOf(relative);
        Skip.IfNot(File.Exists(p) || Directory.Exists(p), $"reference data {p} is absent (../shared is not beside the repository)");
        return p;
    }

    public const string Stories = "models/stories260K/hf";

    /// <summary>Greedy ids from BOS for stories260K (../shared/README.md).</summary>
    public static readonly int[] StoriesGreedyIds =
        { 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411 };

    public const string StoriesGreedyText = " Once upon a time, there was a little girl named Lily. She loved to play outside";
}

public sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "engine-test-" + Guid.NewGuid().ToString("N"));
    public TempDir() => Directory.CreateDirectory(Path);
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}
