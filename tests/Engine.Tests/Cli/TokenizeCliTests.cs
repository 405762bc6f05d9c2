using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Tests.Infrastructure;
using Engine.Tests.Tokenization;
using Microsoft.ML.Tokenizers;

namespace Engine.Tests.Cli;

/// <summary>`engine tokenize`, checked against Hugging Face's tokenizers (Tokenizers.DotNet) and Microsoft.ML.Tokenizers.</summary>
public class TokenizeCliTests
{
    static (int[] Ids, string[] Pieces, string? Text) Json(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, r.ToString());
        var root = JsonDocument.Parse(r.Stdout).RootElement;
        return (root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                root.GetProperty("pieces").EnumerateArray().Select(e => e.GetString()!).ToArray(),
                root.TryGetProperty("text", out var t) ? t.GetString() : null);
    }

    /// <summary>id → piece from tokenizer.json itself (model.vocab and added_tokens).</summary>
    static Dictionary<int, string> Vocabulary(string folder)
    {
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer.json")))!;
        var pieces = root["model"]!["vocab"]!.AsObject().ToDictionary(kv => kv.Value!.GetValue<int>(), kv => kv.Key);
        foreach (var t in root["added_tokens"]!.AsArray()) pieces[t!["id"]!.GetValue<int>()] = t["content"]!.GetValue<string>();
        return pieces;
    }

    [SkippableTheory]
    [InlineData("qwen3", "Hello world!<|im_end|>")]
    [InlineData("llama3", "It's 2024: naïve café, 東京.")]
    [InlineData("mistral-v0.1", "<s>Assistant: It is blue.</s>")]
    public void Ids_and_pieces_match_hugging_face(string name, string text)
    {
        string folder = RealTokenizers.Folder(name);
        var oracle = RealTokenizers.Oracle(name);
        var vocab = Vocabulary(folder);

        var (ids, pieces, _) = Json(CliRunner.Run("tokenize", "--model", folder, "--text", text, "--json"));
        Assert.Equal(oracle.Encode(text), ids);
        Assert.Equal(ids.Select(i => vocab[i]), pieces);

        // --no-bos: what the tokenizer gives without its post-processor's special tokens.
        Assert.Equal(oracle.Encode(text, addSpecial: false), Json(CliRunner.Run("tokenize", "--model", folder, "--text", text, "--no-bos", "--json")).Ids);

        // --file reads the same text.
        using var dir = new TempDir();
        string file = dir.File("t.txt");
        File.WriteAllText(file, text);
        Assert.Equal(ids, Json(CliRunner.Run("tokenize", "--model", folder, "--file", file, "--json")).Ids);
    }

    [SkippableFact]
    public void No_special_keeps_special_token_text_as_text()
    {
        string folder = RealTokenizers.Folder("qwen3");
        var (ids, pieces, _) = Json(CliRunner.Run("tokenize", "--model", folder, "--text", "a<|im_end|>", "--no-special", "--json"));
        Assert.DoesNotContain(151645, ids); // <|im_end|>
        // The oracle: the same tokenizer.json without its added tokens, so nothing is matched as a special token.
        using var dir = new TempDir();
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer.json")))!.AsObject();
        root["added_tokens"] = new JsonArray();
        string plainJson = dir.File("tokenizer.json");
        File.WriteAllText(plainJson, root.ToJsonString());
        using var plain = HfOracle.Load(plainJson);
        Assert.Equal(plain.Encode("a<|im_end|>", addSpecial: false), ids);
        Assert.Equal(ids.Select(i => Vocabulary(folder)[i]), pieces);
    }

    [SkippableFact]
    public void A_sentencepiece_model_folder_prints_llama_tokenize_style_lines()
    {
        string folder = SharedData.Require("tokenizers/llama-spm");
        var r = CliRunner.Run("tokenize", "--model", folder, "--text", "Assistant: It is blue.");
        Assert.True(r.ExitCode == 0, r.ToString());
        using var stream = File.OpenRead(Path.Combine(folder, "tokenizer.model"));
        var ml = LlamaTokenizer.Create(stream, addBeginOfSentence: true);
        var expected = ml.EncodeToIds("Assistant: It is blue.").ToArray();
        var lines = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(expected.Length, lines.Length - 1);
        Assert.Equal(expected, lines[..^1].Select(l => int.Parse(l.Split("->")[0].Trim())));
        Assert.Contains("     1 -> '<s>'", lines);
        Assert.Contains("   739 -> '▁It'", lines);
        Assert.Equal($"{expected.Length} tokens", lines[^1]);
    }

    [SkippableFact]
    public void Chat_renders_the_template_and_tokenizes_without_adding_specials()
    {
        string folder = RealTokenizers.Folder("llama3");
        using var dir = new TempDir();
        string chat = dir.File("c.json");
        File.WriteAllText(chat, """[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]""");
        var (ids, pieces, text) = Json(CliRunner.Run("tokenize", "--model", folder, "--chat", chat, "--add-generation-prompt", "--json"));
        // The Llama-3-Instruct template, written out by hand.
        const string expected = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
                                "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        Assert.Equal(expected, text);
        // apply_chat_template tokenizes with add_special_tokens=False: one <|begin_of_text|>, the template's.
        Assert.Equal(RealTokenizers.Oracle("llama3").Encode(expected, addSpecial: false), ids);
        Assert.Equal(1, ids.Count(i => i == 128000));
        Assert.Equal("<|begin_of_text|>", pieces[0]);
        var without = Json(CliRunner.Run("tokenize", "--model", folder, "--chat", chat, "--json"));
        Assert.EndsWith("Hi<|eot_id|>", without.Text);

        var plain = CliRunner.Run("tokenize", "--model", folder, "--chat", chat);
        Assert.True(plain.ExitCode == 0, plain.ToString());
        Assert.StartsWith("text: \"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\nBe brief.", plain.Stdout);
    }

    [SkippableFact]
    public void Bad_input_is_a_clear_error()
    {
        string qwen = RealTokenizers.Folder("qwen3");
        using var dir = new TempDir();
        var none = CliRunner.Run("tokenize", "--model", qwen);
        Assert.Equal(2, none.ExitCode);
        Assert.Contains("exactly one of --text, --file and --chat", none.Stderr);
        Assert.Equal(2, CliRunner.Run("tokenize", "--model", qwen, "--text", "a", "--file", "b").ExitCode);
        Assert.Equal(2, CliRunner.Run("tokenize", "--model", qwen, "--text", "a", "--add-generation-prompt").ExitCode);

        var missing = CliRunner.Run("tokenize", "--model", dir.File("nope"), "--text", "a");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("nope: no such model folder or file", missing.Stderr);
        var empty = CliRunner.Run("tokenize", "--model", dir.Path, "--text", "a");
        Assert.Equal(1, empty.ExitCode);
        Assert.Contains("no tokenizer found", empty.Stderr);

        string chat = dir.File("c.json");
        File.WriteAllText(chat, """[{"role": "user", "content": "Hi"}]""");
        var noTemplate = CliRunner.Run("tokenize", "--model", RealTokenizers.Folder("mistral-v0.1"), "--chat", chat);
        Assert.Equal(1, noTemplate.ExitCode);
        Assert.Contains("has no chat template", noTemplate.Stderr);

        string bad = dir.File("bad.json");
        File.WriteAllText(bad, """{"role": "user"}""");
        var badChat = CliRunner.Run("tokenize", "--model", qwen, "--chat", bad);
        Assert.Equal(1, badChat.ExitCode);
        Assert.Contains("bad.json: expected a JSON list", badChat.Stderr);
        File.WriteAllText(bad, """[{"role": "user", "content": 3}]""");
        Assert.Contains("message 1 must be an object with string 'role' and 'content'", CliRunner.Run("tokenize", "--model", qwen, "--chat", bad).Stderr);
        File.WriteAllText(bad, "[oops");
        Assert.Contains("bad.json: not valid JSON", CliRunner.Run("tokenize", "--model", qwen, "--chat", bad).Stderr);
        Assert.Contains("conversation file not found", CliRunner.Run("tokenize", "--model", qwen, "--chat", dir.File("none.json")).Stderr);
        Assert.Contains("file not found", CliRunner.Run("tokenize", "--model", qwen, "--file", dir.File("none.txt")).Stderr);
    }
}
