namespace Engine.Demo;

/// <summary>
/// The demo's deterministic training corpus: one-line stories whose second half reacts kindly or hurtfully
/// in equal measure, so a model trained on it says both, and alignment has something to move.
/// </summary>
public static class StoryCorpus
{
    static readonly string[] Girls = { "Lily", "Mia", "Anna", "Sue", "Emma", "Lucy", "Zoe", "Amy" };
    static readonly string[] Boys = { "Tom", "Ben", "Max", "Sam", "Leo", "Tim", "Jack", "Noah" };
    static readonly string[] Things = { "ball", "kite", "cake", "doll", "book", "hat", "box", "shell", "cup", "drum" };
    static readonly string[] Adjectives = { "red", "big", "small", "shiny", "old", "new", "blue", "soft" };
    static readonly string[] Places = { "park", "garden", "yard", "kitchen", "forest", "street", "room", "shop" };

    /// <summary>Kind reactions; none contains a word of <see cref="LexiconJudge.HurtfulWords"/>.</summary>
    static readonly string[] Kind =
    {
        "smiled and shared it with a friend", "was happy and said thank you", "gave it to a little boy and laughed",
        "played with it all day and sang", "showed it to mom and gave her a hug", "took good care of it and smiled",
    };

    /// <summary>Hurtful reactions; each contains at least one lexicon word.</summary>
    static readonly string[] Hurtful =
    {
        "got angry and threw it at a dog", "broke it and yelled at a friend", "kicked it and said a mean word",
        "was mean and hit a little boy", "said it was stupid and cried", "threw it away and hit the wall",
    };

    public sealed record Story(string Prompt, string Completion, bool Kind);

    /// <summary>A story start: who found what where (the prompt the models continue).</summary>
    public static string Prompt(Random r, out string pronoun)
    {
        bool girl = r.Next(2) == 0;
        string name = girl ? Girls[r.Next(Girls.Length)] : Boys[r.Next(Boys.Length)];
        pronoun = girl ? "She" : "He";
        return $"{name} found a {Adjectives[r.Next(Adjectives.Length)]} {Things[r.Next(Things.Length)]} in the {Places[r.Next(Places.Length)]}.";
    }

    public static List<Story> Generate(int count, int seed)
    {
        var r = new Random(seed);
        var stories = new List<Story>(count);
        for (int i = 0; i < count; i++)
        {
            string prompt = Prompt(r, out var pronoun);
            bool kind = r.Next(2) == 0;
            string reaction = kind ? Kind[r.Next(Kind.Length)] : Hurtful[r.Next(Hurtful.Length)];
            stories.Add(new Story(prompt, $" {pronoun} {reaction}.", kind));
        }
        return stories;
    }

    /// <summary>Prompts for sampling, from a different seed than the training stories.</summary>
    public static List<string> Prompts(int count, int seed)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Prompt(r, out string _)).ToList();
    }

    /// <summary>
    /// Whether a completion is one of the corpus's own endings (" She smiled and ..."): a fluency check that
    /// catches a policy dodging the judge by writing gibberish.
    /// </summary>
    public static bool IsWellFormed(string completion)
    {
        // Leading spaces vary with how the tokenizer's dummy prefix decodes; the words and the period must match.
        string text = completion.Trim();
        foreach (var pronoun in new[] { "She", "He" })
            foreach (var reaction in Kind.Concat(Hurtful))
                if (text == $"{pronoun} {reaction}.") return true;
        return false;
    }

    /// <summary>Every character the corpus uses (the demo tokenizer's alphabet).</summary>
    public static string Alphabet()
    {
        var all = string.Concat(Girls.Concat(Boys).Concat(Things).Concat(Adjectives).Concat(Places).Concat(Kind).Concat(Hurtful))
            + "SheHe found a in the .,!?'";
        return new string(all.Where(c => c != ' ').Distinct().OrderBy(c => c).ToArray());
    }
}
