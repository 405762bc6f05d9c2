using System.Diagnostics;

namespace Engine.Tests.Infrastructure;

/// <summary>Runs the built CLI as a separate process, as a user would run ./engine.</summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    static string CliDll => Path.Combine(AppContext.BaseDirectory, "Engine.Cli.dll");

    public static Result Run(params string[] args) => RunIn(null, TimeSpan.FromMinutes(10), args);

    public static Result RunIn(string? workingDirectory, TimeSpan timeout, params string[] args) =>
        RunWith(workingDirectory, timeout, new Dictionary<string, string>(), args);

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
