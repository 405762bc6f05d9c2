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
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(true);
            throw new TimeoutException($"engine {string.Join(' ', args)} did not finish in {timeout}");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
