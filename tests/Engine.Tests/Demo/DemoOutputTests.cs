using Engine.Demo;
using Engine.Tests.Infrastructure;

namespace Engine.Tests.Demo;

/// <summary>`engine demo --out DIR` replaces only what an earlier demo wrote; anything else is refused untouched.</summary>
public class DemoOutputTests
{
    [Fact]
    public void A_folder_with_a_users_files_is_refused_and_left_intact()
    {
        using var dir = new TempDir();
        string home = dir.File("home");
        Directory.CreateDirectory(Path.Combine(home, "documents"));
        File.WriteAllText(Path.Combine(home, "notes.txt"), "mine");
        File.WriteAllText(Path.Combine(home, "documents", "thesis.tex"), "mine too");

        var r = CliRunner.Run("demo", "--out", home, "--sft-steps", "1", "--align-steps", "1");

        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not empty and is not an earlier demo run", r.Stderr);
        Assert.Contains(home, r.Stderr);
        Assert.Equal("mine", File.ReadAllText(Path.Combine(home, "notes.txt")));
        Assert.Equal("mine too", File.ReadAllText(Path.Combine(home, "documents", "thesis.tex")));
        Assert.Equal(2, Directory.EnumerateFileSystemEntries(home).Count());
    }

    [Fact]
    public void A_file_as_out_is_refused()
    {
        using var dir = new TempDir();
        string file = dir.File("report.md");
        File.WriteAllText(file, "x");
        var e = Assert.Throws<EngineException>(() => DemoOutput.Prepare(file));
        Assert.Contains("is a file", e.Message);
        Assert.Equal("x", File.ReadAllText(file));
    }

    [Fact]
    public void An_earlier_run_is_cleared_of_what_the_demo_wrote_and_nothing_else()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        DemoOutput.Prepare(run); // a new folder: created and marked
        Assert.True(File.Exists(Path.Combine(run, DemoOutput.MarkerFile)));
        Directory.CreateDirectory(Path.Combine(run, "kto", "final"));
        File.WriteAllText(Path.Combine(run, "report.md"), "old report");
        File.WriteAllText(Path.Combine(run, "my-notes.md"), "a user's file beside the run");

        DemoOutput.Prepare(run);

        Assert.False(Directory.Exists(Path.Combine(run, "kto")));
        Assert.False(File.Exists(Path.Combine(run, "report.md")));
        Assert.Equal("a user's file beside the run", File.ReadAllText(Path.Combine(run, "my-notes.md")));
        Assert.True(File.Exists(Path.Combine(run, DemoOutput.MarkerFile)));
    }

    [Fact]
    public void An_empty_folder_is_used()
    {
        using var dir = new TempDir();
        string empty = dir.File("empty");
        Directory.CreateDirectory(empty);
        DemoOutput.Prepare(empty);
        Assert.True(File.Exists(Path.Combine(empty, DemoOutput.MarkerFile)));
    }
}
