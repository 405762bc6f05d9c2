using System.Diagnostics;
using System.Runtime.InteropServices;
using Engine.Cli.Options;
using Engine.Distributed;
using Engine.Training;

namespace Engine.Cli;

/// <summary>
/// `--nproc N`: starts the local mpirun with N copies of this engine command (minus --nproc), relays their output, forwards
/// the SIGINT/SIGTERM/SIGHUP it receives (mpirun alone gets them, see Run), and turns a failed job into one clear line that names the newest complete checkpoint.
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
        var psi = InOwnProcessGroup(Launch.LocalMpirun(ranks, program, prefix.Concat(command), threadsPerRank));
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.RedirectStandardInput = true; // the ranks read nothing, and mpirun's new session has no terminal to read
        var clock = Stopwatch.StartNew();
        using var job = Process.Start(psi) ?? throw new EngineException($"could not start {psi.FileName}");
        // mpirun runs in its own process group, so a terminal's Ctrl-C reaches this launcher alone, which passes exactly
        // one signal on: mpirun turns its first SIGINT/SIGTERM into a SIGTERM to every rank (they finish the step and
        // write a checkpoint) but kills the ranks at once on a second one, which a Ctrl-C delivered to the whole group
        // and forwarded as well would be. A second signal to the launcher is forwarded too: "exit at once".
        int received = 0;
        void Forward(PosixSignalContext c)
        {
            c.Cancel = true;
            Interlocked.CompareExchange(ref received, (int)c.Signal, 0);
            Signal(job.Id, c.Signal == PosixSignal.SIGINT ? 2 : 15);
        }
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Forward);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Forward);
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, Forward);
        job.StandardInput.Close();
        var err = Task.Run(() => Relay(job.StandardError, context.Err));
        Relay(job.StandardOutput, context.Out);
        err.Wait();
        job.WaitForExit();
        if (job.ExitCode == 0 && received == 0) return 0;
        string? newest = null;
        try { if (outputDir != null && Directory.Exists(outputDir)) newest = CheckpointStore.Resolve(outputDir); }
        catch (EngineException) { }
        if (received != 0)
        {
            var signal = (PosixSignal)received;
            context.Err.WriteLine($"the {ranks}-rank job stopped on {signal} after {clock.Elapsed.TotalSeconds:F0} s; " +
                (newest is null ? "no checkpoint was written" : $"the newest complete checkpoint is {newest}: continue with --resume {outputDir} (any number of ranks)"));
            return StopSignal.ExitCodeFor(signal);
        }
        context.Err.WriteLine($"error: the {ranks}-rank job stopped after {clock.Elapsed.TotalSeconds:F0} s (mpirun exit code {job.ExitCode}); " +
            (newest is null ? "no checkpoint was written" : $"the newest complete checkpoint is {newest}: continue with --resume {outputDir} (any number of ranks)"));
        return 1;
    }

    /// <summary>The same command started through setsid(1), in a session and process group of its own (same pid: the
    /// launcher's child is not a group leader, so setsid execs in place).</summary>
    static ProcessStartInfo InOwnProcessGroup(ProcessStartInfo psi)
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/bin/setsid")) return psi;
        var wrapped = new ProcessStartInfo("/usr/bin/setsid") { UseShellExecute = false };
        wrapped.ArgumentList.Add(psi.FileName);
        foreach (var a in psi.ArgumentList) wrapped.ArgumentList.Add(a);
        foreach (var (k, v) in psi.Environment) wrapped.Environment[k] = v;
        return wrapped;
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
