using System.Diagnostics;

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

    /// <summary>The built CLI as a separate process.</summary>
    public static Result RunWith(string? workingDirectory, TimeSpan timeout, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        using var running = Start(workingDirectory, environment, args);
        return running.Wait(timeout);
    }

    /// <summary>The built CLI as a separate process, left running (to signal it while it works).</summary>
    public static Running Start(string? workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
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
