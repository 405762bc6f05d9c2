using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Engine.Tests.Infrastructure;

/// <summary>
/// Runs the CLI as a user would run ./engine: in this process by default (the command's output captured, the exit
/// code it would return), or as a separate process where a test needs one (environment variables, signals, crashes).
/// </summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    static string CliDll => Path.Combine(AppContext.BaseDirectory, "Engine.Cli.dll");

    /// <summary>The command in this process; relative paths resolve against the current directory as in a shell.</summary>
    public static Result Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Engine.Cli.CliMain.Run(args, new Engine.Cli.Options.CliContext(stdout, stderr, Interactive: false));
        return new Result(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>
    /// The built CLI in a fresh process, as a user runs it: for measurements of the process's own memory, which in
    /// this host would also see what earlier tests left behind (freed memory the allocator kept, tensors awaiting
    /// their finalizer).
    /// </summary>
    public static Result RunAlone(params string[] args) => RunWith(null, TimeSpan.FromMinutes(10), new Dictionary<string, string>(), args);

    /// <summary>The built CLI as a separate process.</summary>
    public static Result RunWith(string? workingDirectory, TimeSpan timeout, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        using var running = Start(workingDirectory, environment, args);
        return running.Wait(timeout);
    }

    /// <summary>The built CLI as a separate process, left running (to signal it while it works).</summary>
    public static Running Start(string? workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        ChildrenGetTheDefaultInterrupt.Ensure();
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? SharedData.RepoRoot,
        };
        psi.ArgumentList.Add(CliDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        foreach (var (k, v) in environment) psi.Environment[k] = v;
        return new Running(Process.Start(psi)!, args);
    }

    public sealed class Running : IDisposable
    {
        readonly Task<string> _stdout, _stderr;
        readonly string[] _args;
        public Process Process { get; }

        internal Running(Process process, string[] args)
        {
            Process = process;
            _args = args;
            _stdout = process.StandardOutput.ReadToEndAsync();
            _stderr = process.StandardError.ReadToEndAsync();
        }

        /// <summary>Waits for the exit; past the timeout the process is killed and the test fails.</summary>
        public Result Wait(TimeSpan timeout)
        {
            if (!Process.WaitForExit(timeout))
            {
                Process.Kill(true);
                throw new TimeoutException($"engine {string.Join(' ', _args)} did not finish in {timeout}");
            }
            return new Result(Process.ExitCode, _stdout.Result, _stderr.Result);
        }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill(true);
            Process.Dispose();
        }
    }
}

/// <summary>
/// A shell that starts a command in the background without job control (`cmd &amp;` in a script, `nohup … &amp;`) starts
/// it with SIGINT and SIGQUIT ignored, and an ignored signal stays ignored across fork and exec: every `engine`
/// this test host started would ignore Ctrl-C, as Unix wants for background jobs, and the tests that send it would
/// hang. The tests are about a foreground run, so the host puts SIGINT back to its default (only when it found it
/// ignored: a handler the runtime installed is left alone) before it starts a child.
/// </summary>
static class ChildrenGetTheDefaultInterrupt
{
    const int Sigint = 2;
    static readonly IntPtr Default = IntPtr.Zero;
    static readonly Lazy<bool> Done = new(() =>
    {
        if (!OperatingSystem.IsLinux() || !IgnoredAtStart(Sigint)) return false;
        signal(Sigint, Default);
        return true;
    });

    public static void Ensure() => _ = Done.Value;

    /// <summary>The SigIgn mask of /proc/self/status (bit n - 1 for signal n).</summary>
    static bool IgnoredAtStart(int signal) =>
        File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:")) is string line &&
        (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (signal - 1))) != 0;

    [DllImport("libc")]
    static extern IntPtr signal(int signum, IntPtr handler);
}
