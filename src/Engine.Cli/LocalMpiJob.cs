using System.Diagnostics;
using System.Runtime.InteropServices;
using Engine.Cli.Options;
using Engine.Distributed;
using Engine.Training;

namespace Engine.Cli;

/// <summary>
/// `--nproc N`: starts the local mpirun with N copies of this engine command (minus --nproc), relays their output, forwards
/// SIGTERM, and turns a failed job into one clear line that names the newest complete checkpoint.
/// </summary>
public static class LocalMpiJob
{
    /// <summary>The engine command as a new process: the dotnet host and the CLI assembly.</summary>
    public static (string Program, IReadOnlyList<string> Prefix) EngineCommand()
    {
        string? host = Environment.ProcessPath;
        if (host is null || Path.GetFileNameWithoutExtension(host) != "dotnet") host = "dotnet";
        return (host, new[] { typeof(CliMain).Assembly.Location });
    }

    /// <summary>The arguments without --nproc (and its value), so the ranks run the command itself.</summary>
    public static List<string> WithoutOption(IReadOnlyList<string> args, string name)
    {
        var kept = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] == "--" + name) { i++; continue; }
            if (args[i].StartsWith("--" + name + "=", StringComparison.Ordinal)) continue;
            kept.Add(args[i]);
        }
        return kept;
    }

    public static int Run(int ranks, IEnumerable<string> command, int? threadsPerRank, CliContext context, string? outputDir)
    {
        var (program, prefix) = EngineCommand();
        var psi = Launch.LocalMpirun(ranks, program, prefix.Concat(command), threadsPerRank);
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        var clock = Stopwatch.StartNew();
        using var job = Process.Start(psi) ?? throw new EngineException($"could not start {psi.FileName}");
        // A SIGTERM to this launcher stops the job (mpirun passes it on to the ranks) instead of orphaning it.
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            Signal(job.Id, 15);
        });
        var err = Task.Run(() => Relay(job.StandardError, context.Err));
        Relay(job.StandardOutput, context.Out);
        err.Wait();
        job.WaitForExit();
        if (job.ExitCode == 0) return 0;
        string? newest = null;
        try { if (outputDir != null && Directory.Exists(outputDir)) newest = CheckpointStore.Resolve(outputDir); }
        catch (EngineException) { }
        context.Err.WriteLine($"error: the {ranks}-rank job stopped after {clock.Elapsed.TotalSeconds:F0} s (mpirun exit code {job.ExitCode}); " +
            (newest is null ? "no checkpoint was written" : $"the newest complete checkpoint is {newest}: continue with --resume {outputDir} (any number of ranks)"));
        return 1;
    }

    static void Relay(StreamReader from, TextWriter to)
    {
        string? line;
        while ((line = from.ReadLine()) != null)
            lock (to) { to.WriteLine(line); to.Flush(); }
    }

    [DllImport("libc", EntryPoint = "kill")] static extern int Kill(int pid, int signal);

    static void Signal(int pid, int signal)
    {
        if (OperatingSystem.IsLinux()) Kill(pid, signal);
    }
}
