using Engine.Models;

namespace Engine.Cli.Commands;

public sealed class InfoCommand : ICliCommand
{
    public string Name => "info";
    public string Summary => "Describe a model: architecture, parameters, dtype, tokenizer, context.";
    public string Usage => "info --model DIR|FILE.gguf [--json]";

    public int Run(CliArgs args)
    {
        string path = args.RequiredString("model");
        bool json = args.Flag("json");
        args.EnsureAllUsed();
        var parts = ModelLoader.OpenParts(path);
        using var weights = parts.Weights;
        var c = parts.Config;
        var tok = parts.Tokenizer;
        if (json)
        {
            var o = ModelSummary.ToJson(c);
            o["model"] = path;
            o["storage_dtype"] = parts.StorageDtype;
            o["tokenizer"] = tok is null ? null : new System.Text.Json.Nodes.JsonObject
            {
                ["kind"] = tok.Kind.ToString(), ["tokens"] = tok.VocabSize, ["bos"] = tok.BosId, ["eos"] = tok.EosId,
                ["add_bos"] = tok.AddBos, ["chat_template"] = tok.ChatTemplate != null,
            };
            Console.WriteLine(o.ToJsonString());
            return 0;
        }
        Console.WriteLine($"model:          {path}");
        foreach (var (label, value) in ModelSummary.Lines(c))
        {
            Console.WriteLine($"{label + ":",-16}{value}");
            if (label == "parameters") Console.WriteLine($"dtype:          {parts.StorageDtype} on disk (config says {c.TorchDtype})");
        }
        if (tok is not null)
            Console.WriteLine($"tokenizer:      {tok.Kind}, {tok.VocabSize} tokens, bos {tok.BosId?.ToString() ?? "-"}, eos {tok.EosId?.ToString() ?? "-"}, add_bos {tok.AddBos}"
                + (tok.ChatTemplate != null ? ", chat template" : ""));
        else Console.WriteLine("tokenizer:      none found");
        return 0;
    }
}
