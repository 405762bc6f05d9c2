using System.Text.Json;
using Engine.Data;
using Engine.Tests.Infrastructure;
using Engine.Tokenization;

namespace Engine.Tests.Data;

/// <summary>`engine data inspect` run as a user runs it.</summary>
public class DataInspectCliTests
{
    [Fact]
    public void Inspect_describes_a_paired_file()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "p.jsonl",
            """{"chosen": "The sky is blue.", "rejected": "The sky is green."}""",
            """{"chosen": "Two and two make four.", "rejected": "Two and two make five."}""",
            """{"chosen": "Q: x? A: ", "rejected": "Q: x? A: y"}""");
        var r = CliRunner.Run("data", "inspect", path);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("paired (chosen, rejected; prompt extracted as their common prefix), text", r.Stdout);
        Assert.Contains("rows:               2 (1 skipped)", r.Stdout);
        Assert.Contains("empty completions:  1 (skipped)", r.Stdout);
        // Prompts "The sky is" (10 chars) and "Two and two make f" (18: TRL's character-level prefix takes the shared 'f').
        Assert.Contains("prompt chars:       min 10, mean 14.0, median 10, p95 18, max 18", r.Stdout);
        Assert.Contains("for KTO:            4 rows (2 desirable, 2 undesirable)", r.Stdout);
        Assert.Contains("give --model", r.Stdout);
    }

    [Fact]
    public void Inspect_reports_label_balance_and_the_kto_weight_check()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "u.jsonl",
            """{"prompt": "a", "completion": "b", "label": true}""",
            """{"prompt": "a", "completion": "c", "label": false}""",
            """{"prompt": "a", "completion": "d", "label": false}""",
            """{"prompt": "a", "completion": "e", "label": false}""");
        var r = CliRunner.Run("data", "inspect", path);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("labels:             1 desirable (25.0%), 3 undesirable", r.Stdout);
        Assert.Contains("set the desirable weight to 3–4", r.Stdout);
        var balanced = CliRunner.Run("data", "inspect", path, "--desirable-weight", "3.5");
        Assert.Contains("within [1, 4/3]", balanced.Stdout);
    }

    [Fact]
    public void Inspect_json_output_parses()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "r.jsonl",
            """{"prompt": "a", "completion": "b", "score": 9}""",
            """{"prompt": "a", "completion": "c", "score": 1}""");
        var r = CliRunner.Run("data", "inspect", path, "--label-threshold", "5", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.Equal("unpaired", root.GetProperty("format").GetString());
        Assert.Equal(2, root.GetProperty("rows").GetInt32());
        Assert.Equal(1, root.GetProperty("labels").GetProperty("desirable").GetInt32());
        Assert.Equal(1.0, root.GetProperty("labels").GetProperty("kto_weighted_ratio").GetDouble());
        Assert.Equal(1, root.GetProperty("chars").GetProperty("completion").GetProperty("max").GetInt32());
    }

    [Fact]
    public void Inspect_of_bad_input_exits_1_naming_file_and_line()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "bad.jsonl", """{"prompt": "a", "chosen": "b", "rejected": "c"}""", "{not json");
        var r = CliRunner.Run("data", "inspect", path);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith($"error: {path}:2: malformed JSON", r.Stderr);
    }

    [Fact]
    public void Token_limits_without_a_model_are_a_usage_error()
    {
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "p.jsonl", """{"prompt": "a", "chosen": "b", "rejected": "c"}""");
        var r = CliRunner.Run("data", "inspect", path, "--max-length", "64");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("need --model", r.Stderr);
    }

    [SkippableFact]
    public void Inspect_with_a_model_counts_tokens_and_truncation()
    {
        string model = SharedData.Require(SharedData.Stories);
        Skip.If(TokenizerLoader.TryLoad(model) is null, "this build cannot load the stories260K tokenizer yet (tokenizer loading is on the tok branch)");
        using var dir = new TempDir();
        string longPrompt = string.Join(" ", Enumerable.Repeat("Once upon a time there was a little girl.", 20));
        var path = DataFiles.Lines(dir, "p.jsonl",
            JsonSerializer.Serialize(new { prompt = longPrompt, chosen = " She was happy.", rejected = " She was sad." }),
            JsonSerializer.Serialize(new { prompt = "Once upon a time", chosen = " there was a dog.", rejected = " there was a cat." }));
        var r = CliRunner.Run("data", "inspect", path, "--model", model, "--max-length", "64", "--max-prompt-length", "32", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.Stdout);
        var tokens = doc.RootElement.GetProperty("tokens");
        Assert.True(tokens.GetProperty("prompt").GetProperty("max").GetInt32() > 64);
        var truncation = doc.RootElement.GetProperty("truncation");
        Assert.Equal(1, truncation.GetProperty("prompts_truncated").GetInt32());
        Assert.Equal(0, truncation.GetProperty("rows_dropped").GetInt32());
    }

    [SkippableFact]
    public void Show_prints_rows_as_the_trainer_sees_them()
    {
        // A tokenizer-only folder will do; the ids are those the trainer's ExampleTokenizer gives (after truncation),
        // their text decoded with special tokens kept.
        string folder = SharedData.Require("tokenizers/llama-spm");
        using var dir = new TempDir();
        var path = DataFiles.Lines(dir, "p.jsonl",
            JsonSerializer.Serialize(new { prompt = "Question: what colour is the sky?\nAssistant:", chosen = " It is blue.", rejected = " Green." }),
            JsonSerializer.Serialize(new { prompt = "Q:", chosen = " a", rejected = " b" }));
        var r = CliRunner.Run("data", "inspect", path, "--model", folder, "--show", "1", "--max-length", "12", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var shown = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("shown");
        Assert.Equal(1, shown.GetArrayLength());
        var row = shown[0];
        Assert.EndsWith("p.jsonl:1", row.GetProperty("source").GetString());
        Assert.False(row.GetProperty("dropped").GetBoolean());

        var tokenizer = new ExampleTokenizer(TokenizerLoader.Load(folder), new TokenizationSettings { MaxLength = 12, MaxPromptLength = 6 });
        var expected = tokenizer.Tokenize(new PreferenceExample(ExampleText.Plain("Question: what colour is the sky?\nAssistant:"),
            ExampleText.Plain(" It is blue."), ExampleText.Plain(" Green."), new RowSource(path, 1, 1)), new TruncationReport())!;
        int[] Ids(string part) => row.GetProperty(part).GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(expected.Prompt, Ids("prompt"));
        Assert.Equal(expected.Chosen, Ids("chosen"));
        Assert.Equal(expected.Rejected, Ids("rejected"));
        Assert.Equal(6, expected.Prompt.Length); // keep_end cut the prompt to 6 tokens, BOS kept
        Assert.Equal(" It is blue.</s>", row.GetProperty("chosen").GetProperty("text").GetString());
        Assert.StartsWith("<s>", row.GetProperty("prompt").GetProperty("text").GetString());

        var text = CliRunner.Run("data", "inspect", path, "--model", folder, "--show", "2");
        Assert.True(text.ExitCode == 0, text.ToString());
        Assert.Contains("  chosen text:      \" It is blue.</s>\"", text.Stdout);
        Assert.Contains("p.jsonl:2", text.Stdout);

        var noModel = CliRunner.Run("data", "inspect", path, "--show", "1");
        Assert.Equal(2, noModel.ExitCode);
        Assert.Contains("--show tokenizes rows and needs --model", noModel.Stderr);
    }
}
