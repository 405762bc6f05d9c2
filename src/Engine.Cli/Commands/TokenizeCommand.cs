using System.Text.Json;
using Engine.Cli.Options;
using Engine.Data;
using Engine.Models;

namespace Engine.Cli.Commands;

public sealed record TokenizeArgs(string Model = "", string? Text = null, string? File = null, string? Chat = null,
    bool NoSpecial = false, bool NoBos = false, bool AddGenerationPrompt = false, bool Json = false);

/// <summary>`engine tokenize`: ids and pieces of a text or a chat conversation, like llama.cpp's llama-tokenize.</summary>
public sealed class TokenizeCommand : CliCommand<TokenizeArgs>
{
    public override string Name => "tokenize";
    public override string Summary => "Show a text's (or a chat conversation's) token ids and pieces under a model's tokenizer.";
    protected override TokenizeArgs Defaults => new();

    protected override IReadOnlyList<CliOption<TokenizeArgs>> Options { get; } = new[]
    {
        Opt<TokenizeArgs>.String("model", "a model folder, a folder of tokenizer files only, or a GGUF file", a => a.Model, (a, v) => a with { Model = v },
            valueName: "DIR|FILE.gguf", required: true),
        Opt<TokenizeArgs>.String("text", "the text to tokenize", a => a.Text, (a, v) => a with { Text = v }),
        Opt<TokenizeArgs>.String("file", "tokenize this file's text (UTF-8, as is)", a => a.File, (a, v) => a with { File = v }, valueName: "FILE"),
        Opt<TokenizeArgs>.String("chat", "render a conversation (a JSON list of {role, content}) with the model's chat template and tokenize it",
            a => a.Chat, (a, v) => a with { Chat = v }, valueName: "FILE.json"),
        Opt<TokenizeArgs>.Flag("add-generation-prompt", "with --chat: end with the opening of the assistant's turn", a => a.AddGenerationPrompt,
            (a, v) => a with { AddGenerationPrompt = v }),
        Opt<TokenizeArgs>.Flag("no-special", "special-token text (<s>, <|im_end|>) stays plain text instead of becoming its id", a => a.NoSpecial,
            (a, v) => a with { NoSpecial = v }),
        Opt<TokenizeArgs>.Flag("no-bos", "do not add BOS (or EOS) even when the tokenizer adds it", a => a.NoBos, (a, v) => a with { NoBos = v }),
        Opt<TokenizeArgs>.Flag("json", "print {\"ids\": [...], \"pieces\": [...]} (and \"text\" with --chat)", a => a.Json, (a, v) => a with { Json = v }),
    };

    static readonly JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    protected override int Execute(Parsed<TokenizeArgs> parsed, CliContext context)
    {
        var a = parsed.Value;
        int sources = (a.Text is null ? 0 : 1) + (a.File is null ? 0 : 1) + (a.Chat is null ? 0 : 1);
        if (sources != 1) throw new UsageException("tokenize: give exactly one of --text, --file and --chat");
        if (a.Chat is null && a.AddGenerationPrompt) throw new UsageException("tokenize: --add-generation-prompt goes with --chat");
        if (a.Chat is not null && (a.NoSpecial || a.NoBos))
            throw new UsageException("tokenize: --no-special and --no-bos apply to --text and --file (a chat template writes its own special tokens)");
        var tokenizer = TokenizerSource.Load(a.Model);
        TokenizedText result;
        if (a.Chat is not null)
            result = TokenInspection.Chat(tokenizer, TokenInspection.ReadConversation(a.Chat), a.AddGenerationPrompt, a.Model);
        else
        {
            string text = a.Text ?? (System.IO.File.Exists(a.File) ? System.IO.File.ReadAllText(a.File!) : throw new EngineException($"{a.File}: file not found"));
            result = TokenInspection.Text(tokenizer, text, parseSpecial: !a.NoSpecial, addBos: !a.NoBos);
        }
        var w = context.Out;
        if (a.Json)
        {
            var json = new Dictionary<string, object> { ["ids"] = result.Ids, ["pieces"] = result.Pieces };
            if (a.Chat is not null) json = new Dictionary<string, object> { ["text"] = result.Text, ["ids"] = result.Ids, ["pieces"] = result.Pieces };
            w.WriteLine(JsonSerializer.Serialize(json, Relaxed));
            return 0;
        }
        // The rendered text as a JSON string, so its newlines and trailing spaces are visible.
        if (a.Chat is not null) w.WriteLine("text: " + JsonSerializer.Serialize(result.Text, Relaxed));
        for (int i = 0; i < result.Ids.Count; i++) w.WriteLine($"{result.Ids[i],6} -> '{result.Pieces[i]}'");
        w.WriteLine($"{result.Ids.Count} tokens");
        return 0;
    }
}
