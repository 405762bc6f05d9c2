using System.Text.Json.Nodes;
using Engine.Cli.Options;
using Engine.Models;

namespace Engine.Cli.Commands;

public sealed record InfoArgs(string Model = "", bool Json = false);

public sealed class InfoCommand : CliCommand<InfoArgs>
{
    public override string Name => "info";
    public override string Summary => "Describe a model: architecture, parameters, dtype, tokenizer, context.";
    protected override InfoArgs Defaults => new();

    protected override IReadOnlyList<CliOption<InfoArgs>> Options { get; } = new[]
    {
        Opt<InfoArgs>.String("model", "a Hugging Face folder or a GGUF file", a => a.Model, (a, v) => a with { Model = v }, valueName: "DIR|FILE.gguf", required: true),
        Opt<InfoArgs>.Flag("json", "print the description as JSON", a => a.Json, (a, v) => a with { Json = v }),
    };

    protected override int Execute(Parsed<InfoArgs> parsed, CliContext context)
    {
        string path = parsed.Value.Model;
        var parts = ModelLoader.OpenParts(path);
        using var weights = parts.Weights;
        var c = parts.Config;
        var w = context.Out;
        var tok = parts.Tokenizer;
        if (parsed.Value.Json)
        {
            var o = ModelSummary.ToJson(c);
            o["model"] = path;
            o["storage_dtype"] = parts.StorageDtype;
            o["tokenizer"] = tok is null ? null : new JsonObject
            {
                ["kind"] = tok.Kind.ToString(), ["vocab_size"] = tok.VocabSize, ["bos"] = tok.BosId, ["eos"] = tok.EosId, ["add_bos"] = tok.AddBos,
                ["chat_template"] = tok.ChatTemplate != null,
            };
            w.WriteLine(o.ToJsonString());
            return 0;
        }
        w.WriteLine($"model:          {path}");
        foreach (var (label, value) in ModelSummary.Lines(c))
        {
            w.WriteLine($"{label + ":",-16}{value}");
            if (label == "parameters") w.WriteLine($"dtype:          {parts.StorageDtype} on disk (config says {c.TorchDtype})");
        }
        if (tok is not null)
            w.WriteLine($"tokenizer:      {tok.Kind}, {tok.VocabSize} tokens, bos {tok.BosId?.ToString() ?? "-"}, eos {tok.EosId?.ToString() ?? "-"}, add_bos {tok.AddBos}"
                + (tok.ChatTemplate != null ? ", chat template" : ""));
        else w.WriteLine("tokenizer:      none found");
        return 0;
    }
}
