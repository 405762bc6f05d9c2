using System.Text.Json;
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
            w.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["model"] = path, ["architecture"] = c.Architecture, ["parameters"] = c.ParameterCount(), ["storage_dtype"] = parts.StorageDtype,
                ["torch_dtype"] = c.TorchDtype, ["layers"] = c.NumLayers, ["hidden_size"] = c.HiddenSize, ["intermediate_size"] = c.IntermediateSize,
                ["heads"] = c.NumHeads, ["kv_heads"] = c.NumKvHeads, ["head_dim"] = c.HeadDim, ["sliding_window"] = c.SlidingWindow,
                ["rope_theta"] = c.RopeTheta, ["max_position_embeddings"] = c.MaxPositionEmbeddings, ["tie_word_embeddings"] = c.TieWordEmbeddings,
                ["vocab_size"] = c.VocabSize,
                ["tokenizer"] = tok is null ? null : new Dictionary<string, object?>
                {
                    ["kind"] = tok.Kind.ToString(), ["vocab_size"] = tok.VocabSize, ["bos"] = tok.BosId, ["eos"] = tok.EosId, ["add_bos"] = tok.AddBos,
                    ["chat_template"] = tok.ChatTemplate != null,
                },
            }));
            return 0;
        }
        w.WriteLine($"model:          {path}");
        w.WriteLine($"architecture:   {c.Architecture}");
        w.WriteLine($"parameters:     {c.ParameterCount():N0}");
        w.WriteLine($"dtype:          {parts.StorageDtype} on disk (config says {c.TorchDtype})");
        w.WriteLine($"layers:         {c.NumLayers}, hidden {c.HiddenSize}, FFN {c.IntermediateSize}");
        w.WriteLine($"attention:      {c.NumHeads} heads, {c.NumKvHeads} KV heads, head dim {c.HeadDim}"
            + (c.SlidingWindow is int sw ? $", sliding window {sw}" : ""));
        w.WriteLine($"rope:           theta {c.RopeTheta}" + (c.RopeScaling == RopeScalingKind.Linear ? $", linear scaling ×{c.RopeScalingFactor}" : ""));
        w.WriteLine($"context:        {c.MaxPositionEmbeddings}");
        w.WriteLine($"embeddings:     {(c.TieWordEmbeddings ? "tied" : "untied")}");
        w.WriteLine($"vocab:          {c.VocabSize}");
        if (tok is not null)
            w.WriteLine($"tokenizer:      {tok.Kind}, {tok.VocabSize} tokens, bos {tok.BosId?.ToString() ?? "-"}, eos {tok.EosId?.ToString() ?? "-"}, add_bos {tok.AddBos}"
                + (tok.ChatTemplate != null ? ", chat template" : ""));
        else w.WriteLine("tokenizer:      none found");
        return 0;
    }
}
