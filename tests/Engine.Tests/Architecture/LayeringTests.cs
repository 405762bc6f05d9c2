using System.Reflection;

namespace Engine.Tests.Architecture;

/// <summary>
/// The dependency direction of docs/architecture.md, checked on the compiled code: each folder of the core library
/// may use only the folders listed for it, and the core library references none of the projects built on it.
/// </summary>
public class LayeringTests
{
    /// <summary>Folder (namespace under Engine) → the folders it may use. "" is the root (EngineException).</summary>
    public static readonly IReadOnlyDictionary<string, string[]> MayUse = new Dictionary<string, string[]>
    {
        [""] = Array.Empty<string>(),
        ["Util"] = new[] { "" },
        ["Tokenization"] = new[] { "", "Util" },
        ["Kernels"] = new[] { "", "Util" },
        ["Models"] = new[] { "", "Util", "Tokenization", "Kernels" },
        ["Data"] = new[] { "", "Util", "Tokenization" },
        ["Adapters"] = new[] { "", "Util", "Kernels", "Models" },
        ["Generation"] = new[] { "", "Util", "Tokenization", "Models", "Kernels" },
        ["Distributed"] = new[] { "", "Util" },
        ["Objectives"] = new[] { "", "Util", "Kernels", "Distributed" },
        ["Methods"] = new[] { "", "Util", "Tokenization", "Kernels", "Models", "Data", "Objectives", "Distributed" },
        ["Training"] = new[] { "", "Util", "Adapters", "Tokenization", "Kernels", "Models", "Data", "Objectives", "Methods", "Generation", "Distributed" },
        ["Memory"] = new[] { "", "Util", "Adapters", "Tokenization", "Kernels", "Models", "Data", "Objectives", "Methods", "Training", "Distributed" },
        ["Gguf"] = new[] { "", "Util", "Adapters", "Tokenization", "Kernels", "Models", "Data", "Generation" },
    };

    static string? Folder(Type t)
    {
        string? ns = t.Namespace;
        if (ns is null || !(ns == "Engine" || ns.StartsWith("Engine.", StringComparison.Ordinal))) return null;
        var parts = ns.Split('.');
        return parts.Length == 1 ? "" : parts[1];
    }

    static readonly Assembly Core = typeof(EngineException).Assembly;

    [Fact]
    public void Every_core_folder_has_a_rule()
    {
        var folders = Core.GetTypes().Select(Folder).Where(f => f != null).Distinct().ToList();
        Assert.All(folders, f => Assert.True(MayUse.ContainsKey(f!), $"Engine.{f} has no layering rule in LayeringTests.MayUse (and docs/architecture.md)"));
    }

    [Fact]
    public void Core_folders_use_only_the_folders_below_them()
    {
        var violations = new List<string>();
        foreach (var type in Core.GetTypes())
        {
            var from = Folder(type);
            if (from is null || !MayUse.TryGetValue(from, out var allowed)) continue;
            foreach (var used in TypeDependencies.Of(type))
            {
                if (used.Assembly != Core) continue;
                var to = Folder(used);
                if (to is null || to == from || allowed.Contains(to)) continue;
                violations.Add($"Engine.{from} → Engine.{to}: {type.FullName} uses {used.FullName}");
            }
        }
        Assert.True(violations.Count == 0, "forbidden references:\n" + string.Join("\n", violations.Distinct().Take(40)));
    }

    [Theory]
    [InlineData("Engine", new[] { "Engine.Cli", "Engine.Demo", "Engine.Bench", "Engine.Benchmarks", "Engine.Tests", "BenchmarkDotNet", "xunit.core", "Tokenizers.DotNet" })]
    [InlineData("Engine.Demo", new[] { "Engine.Cli", "Engine.Bench", "Engine.Tests" })]
    [InlineData("Engine.Bench", new[] { "Engine.Cli", "Engine.Demo", "Engine.Tests" })]
    public void Projects_reference_only_what_is_below_them(string assembly, string[] forbidden)
    {
        var referenced = Assembly.Load(assembly).GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.Empty(referenced.Intersect(forbidden));
    }

    [Fact]
    public void The_check_sees_a_forbidden_reference()
    {
        // The scanner itself must find a use inside a method body (not just in signatures): a lambda's closure here
        // names LayeringTests.MayUse, which only the IL shows.
        var deps = TypeDependencies.Of(typeof(Probe)).ToList();
        Assert.Contains(typeof(Engine.Models.LlamaConfig), deps);
        Assert.Contains(typeof(System.Text.StringBuilder), deps);
    }

    static class Probe
    {
        public static int BodyOnly()
        {
            var sb = new System.Text.StringBuilder();
            return sb.Append(new Engine.Models.LlamaConfig().HiddenSize).Length;
        }
    }
}
