using Engine.Cli;
using Engine.Distributed;

namespace Engine.Tests.Distributed;

public class LaunchTests
{
    [Fact]
    public void NprocIsRemovedFromTheRanksCommand()
    {
        var args = new[] { "--method", "dpo", "--nproc", "2", "--out", "x", "--nproc=3", "--batch-size", "2" };
        Assert.Equal(new[] { "--method", "dpo", "--out", "x", "--batch-size", "2" }, LocalMpiJob.WithoutOption(args, "nproc"));
    }

    [Fact]
    public void LocalMpirunUnbindsOversubscribesAndSharesTheCores()
    {
        Skip.If(Environment.GetEnvironmentVariable("PATH")?.Split(':').All(d => !File.Exists(Path.Combine(d, "mpirun"))) ?? true, "mpirun is not installed");
        int ranks = Environment.ProcessorCount + 1;
        var psi = Launch.LocalMpirun(ranks, "prog", new[] { "a", "b" });
        var args = psi.ArgumentList.ToList();
        Assert.Equal(new[] { "-np", ranks.ToString() }, args.Take(2));
        Assert.Contains("--oversubscribe", args);
        Assert.Equal("none", args[args.IndexOf("--bind-to") + 1]);
        Assert.Equal(new[] { "prog", "a", "b" }, args.TakeLast(3));
        Assert.Equal("1", psi.Environment[Launch.ThreadsVariable]);
        bool root = Environment.UserName == "root";
        Assert.Equal(root, args.Contains("--allow-run-as-root"));
        var two = Launch.LocalMpirun(2, "prog", Array.Empty<string>(), threadsPerRank: 3);
        if (Environment.ProcessorCount >= 2) Assert.DoesNotContain("--oversubscribe", two.ArgumentList);
        Assert.Equal("3", two.Environment[Launch.ThreadsVariable]);
    }

    [Fact]
    public void WithoutALauncherAProcessIsOneRankAndLoadsNoMpi()
    {
        Skip.If(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_SIZE") != null, "the tests themselves run under mpirun");
        Assert.Equal(1, Launch.RanksFromEnvironment());
        Assert.Same(SingleProcess.Instance, Launch.Communicator());
        Assert.DoesNotContain(System.Diagnostics.Process.GetCurrentProcess().Modules.Cast<System.Diagnostics.ProcessModule>(),
            m => m.ModuleName.StartsWith("libmpi", StringComparison.Ordinal));
    }
}
