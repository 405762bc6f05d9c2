using Engine.Models;

namespace Engine.Cli.Commands;

public sealed class InfoCommand : ICliCommand
{
    public string Name => "info";
    public string Summary => "Describe a model: architecture, parameters, dtype, tokenizer, context.";
    public string Usage => "info --model DIR|FILE.gguf";

    public int Run(CliArgs args)
    {
        string path = args.RequiredString("model");
        args.EnsureAllUsed();
        var parts = ModelLoader.OpenParts(path);
        using var weights = parts.Weights;
        var c = parts.Config;
        Console.WriteLine($"model:          {path}");
        Console.WriteLine($"architecture:   {c.Architecture}");
        Console.WriteLine($"parameters:     {c.ParameterCount():N0}");
        Console.WriteLine($"dtype:          {parts.StorageDtype} on disk (config says {c.TorchDtype})");
        Console.WriteLine($"layers:         {c.NumLayers}, hidden {c.HiddenSize}, FFN {c.IntermediateSize}");
        Console.WriteLine($"attention:      {c.NumHeads} heads, {c.NumKvHeads} KV heads, head dim {c.HeadDim}"
            + (c.SlidingWindow is int w ? $", sliding window {w}" : ""));
        Console.WriteLine($"rope:           theta {c.RopeTheta}" + (c.RopeScaling == RopeScalingKind.Linear ? $", linear scaling ×{c.RopeScalingFactor}" : ""));
        Console.WriteLine($"context:        {c.MaxPositionEmbeddings}");
        Console.WriteLine($"embeddings:     {(c.TieWordEmbeddings ? "tied" : "untied")}");
        Console.WriteLine($"vocab:          {c.VocabSize}");
        if (parts.Tokenizer is { } tok)
            Console.WriteLine($"tokenizer:      {tok.Kind}, {tok.VocabSize} tokens, bos {tok.BosId?.ToString() ?? "-"}, eos {tok.EosId?.ToString() ?? "-"}, add_bos {tok.AddBos}"
                + (tok.ChatTemplate != null ? ", chat template" : ""));
        else Console.WriteLine("tokenizer:      none found");
        return 0;
    }
}
