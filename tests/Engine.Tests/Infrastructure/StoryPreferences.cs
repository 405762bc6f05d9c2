using System.Text.Json;

namespace Engine.Tests.Infrastructure;

/// <summary>
/// A small deterministic preference set in TinyStories' register: the same story start continues kindly
/// (chosen) or unkindly (rejected). Written as TRL-format JSONL for the trainer tests.
/// </summary>
public static class StoryPreferences
{
    static readonly string[] Names = { "Lily", "Tom", "Sue", "Ben", "Mia", "Max", "Anna", "Sam" };
    static readonly string[] Things = { "ball", "cat", "dog", "tree", "cake", "toy", "box", "bird" };
    static readonly string[] Kind = { "was very happy and smiled", "laughed and gave a big hug", "said thank you and played nicely", "shared the toy with a friend" };
    static readonly string[] Unkind = { "was very sad and cried", "got angry and hit the wall", "shouted and broke the toy", "was mean and ran away" };

    public static List<(string Prompt, string Chosen, string Rejected)> Pairs(int count, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            string n = Names[r.Next(Names.Length)], t = Things[r.Next(Things.Length)];
            return ($"Once upon a time, {n} saw a {t}. {n}", " " + Kind[r.Next(Kind.Length)] + ".", " " + Unkind[r.Next(Unkind.Length)] + ".");
        }).ToList();
    }

    public static string WritePaired(string path, IEnumerable<(string Prompt, string Chosen, string Rejected)> pairs)
    {
        File.WriteAllLines(path, pairs.Select(p => JsonSerializer.Serialize(new { prompt = p.Prompt, chosen = p.Chosen, rejected = p.Rejected })));
        return path;
    }

    /// <summary>The unpaired (KTO) form: each pair becomes a desirable and an undesirable row.</summary>
    public static string WriteUnpaired(string path, IEnumerable<(string Prompt, string Chosen, string Rejected)> pairs)
    {
        File.WriteAllLines(path, pairs.SelectMany(p => new[]
        {
            JsonSerializer.Serialize(new { prompt = p.Prompt, completion = p.Chosen, label = true }),
            JsonSerializer.Serialize(new { prompt = p.Prompt, completion = p.Rejected, label = false }),
        }));
        return path;
    }
}
