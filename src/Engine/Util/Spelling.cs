using System.Collections.Concurrent;
using System.Reflection;

namespace Engine.Util;

/// <summary>
/// How an enum value is written on the command line, in config files and in logs (TRL's spellings where TRL has
/// one). Declared on the enum field, so the name, the parser and the help text of each enum come from one place.
/// </summary>
[AttributeUsage(AttributeTargets.Field)]
public sealed class SpellingAttribute : Attribute
{
    public string Name { get; }
    /// <summary>Other accepted spellings (parsed, never printed).</summary>
    public string[] Aliases { get; }

    public SpellingAttribute(string name, params string[] aliases)
    {
        Name = name;
        Aliases = aliases;
    }
}

/// <summary>The one parser and printer of every enum marked with <see cref="SpellingAttribute"/>.</summary>
public static class Spelling
{
    sealed record Table(IReadOnlyList<string> Names, IReadOnlyDictionary<string, object> Parse, IReadOnlyDictionary<object, string> Print);

    static readonly ConcurrentDictionary<Type, Table> Tables = new();

    static Table For(Type type) => Tables.GetOrAdd(type, t =>
    {
        var names = new List<string>();
        var parse = new Dictionary<string, object>(StringComparer.Ordinal);
        var print = new Dictionary<object, string>();
        foreach (var field in t.GetFields(BindingFlags.Public | BindingFlags.Static))
        {
            var spelling = field.GetCustomAttribute<SpellingAttribute>()
                ?? throw new InvalidOperationException($"{t.Name}.{field.Name} has no [Spelling]");
            object value = field.GetValue(null)!;
            names.Add(spelling.Name);
            print[value] = spelling.Name;
            foreach (var s in spelling.Aliases.Prepend(spelling.Name))
                if (!parse.TryAdd(s, value)) throw new InvalidOperationException($"{t.Name}: '{s}' is spelled twice");
        }
        return new Table(names, parse, print);
    });

    /// <summary>The spellings of <typeparamref name="T"/>, in declaration order.</summary>
    public static IReadOnlyList<string> Names<T>() where T : struct, Enum => For(typeof(T)).Names;

    public static string Of<T>(T value) where T : struct, Enum => For(typeof(T)).Print[value];

    public static bool TryParse<T>(string text, out T value) where T : struct, Enum
    {
        if (For(typeof(T)).Parse.TryGetValue(text.Trim().ToLowerInvariant(), out var v)) { value = (T)v; return true; }
        value = default;
        return false;
    }

    /// <param name="what">what the text is, for the error ("--precision", "truncation_mode")</param>
    public static T Parse<T>(string text, string what) where T : struct, Enum =>
        TryParse<T>(text, out var value) ? value
            : throw new EngineException($"{what}: unknown value '{text}' (expected {string.Join(", ", Names<T>())})");
}
