using BenchmarkDotNet.Running;

namespace Engine.Benchmarks;

/// <summary>
/// BenchmarkDotNet suites, one folder per area. Run e.g.
/// <c>dotnet run -c Release --project benchmarks/Engine.Benchmarks -- --filter '*Kernel*'</c>.
/// </summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
