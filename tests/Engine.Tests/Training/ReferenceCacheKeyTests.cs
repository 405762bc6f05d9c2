using Engine.Methods;
using Engine.Tests.Infrastructure;
using Engine.Training;

namespace Engine.Tests.Training;

/// <summary>The cached reference log-probs are keyed by every input that decides them, every tokenizer file included.</summary>
public class ReferenceCacheKeyTests
{
    static string Key(string model, string data) => ReferenceCacheKey.For(new TrainingOptions
    {
        Step = new StepSettings { Method = AlignmentMethods.Dpo, Model = model },
        DataPath = data,
    }, new[] { data }).Hash();

    [SkippableFact]
    public void Changing_any_tokenizer_file_of_the_model_folder_changes_the_key()
    {
        using var dir = new TempDir();
        string model = Gguf.TestModels.CopyStories(dir.File("model"));
        string data = StoryPreferences.WritePaired(dir.File("d.jsonl"), StoryPreferences.Pairs(2, seed: 1));
        Assert.True(File.Exists(Path.Combine(model, "tokenizer.model")), "stories260K's folder has a SentencePiece tokenizer.model");
        string original = Key(model, data);
        Assert.Equal(original, Key(model, data)); // deterministic

        // One byte of tokenizer.model (once missing from the key, so a changed tokenizer reused stale log-probs).
        string spm = Path.Combine(model, "tokenizer.model");
        byte[] bytes = File.ReadAllBytes(spm);
        bytes[^1] ^= 1;
        File.WriteAllBytes(spm, bytes);
        string changedModel = Key(model, data);
        Assert.NotEqual(original, changedModel);

        // A tokenizer file added beside it (tokenizer.json is preferred over tokenizer.model when present).
        File.WriteAllText(Path.Combine(model, "tokenizer.json"), "{}");
        Assert.NotEqual(changedModel, Key(model, data));

        // And tokenizer_config.json (chat template, add_bos_token).
        string withJson = Key(model, data);
        File.AppendAllText(Path.Combine(model, "tokenizer_config.json"), " ");
        Assert.NotEqual(withJson, Key(model, data));
    }

    [SkippableFact]
    public void Files_lists_every_file_of_the_reference_folder()
    {
        using var dir = new TempDir();
        string model = Gguf.TestModels.CopyStories(dir.File("model"));
        var key = ReferenceCacheKey.For(new TrainingOptions { Step = new StepSettings { Model = model }, DataPath = "d.jsonl" }, Array.Empty<string>());
        Assert.Equal(Directory.GetFiles(model).Select(Path.GetFileName).Order(StringComparer.Ordinal), key.Files().Select(Path.GetFileName));
    }
}
