using Engine.Generation;
using Engine.Models;
using Engine.Util;

namespace Engine.Cli.Commands;

public sealed class GenerateCommand : ICliCommand
{
    public string Name => "generate";
    public string Summary => "Continue a prompt with a model (temperature 0 = greedy).";
    public string Usage => "generate --model DIR|FILE.gguf --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--dtype f32|bf16]";

    public int Run(CliArgs args)
    {
        string path = args.RequiredString("model");
        string prompt = args.String("prompt") ?? throw new UsageException("generate: --prompt is required (use --prompt \"\" to start from BOS)");
        var options = new SamplingOptions
        {
            MaxNewTokens = args.Int("max-new-tokens", min: 0) ?? 64,
            Temperature = args.Double("temperature") ?? 0.8,
            TopP = args.Double("top-p") ?? 0.95,
            TopK = args.Int("top-k"),
            Seed = args.Long("seed") ?? 0,
        };
        var dtype = TensorMemory.ParseDtype(args.String("dtype") ?? "f32");
        args.EnsureAllUsed();
        options.Validate();

        using var loaded = ModelLoader.Load(path, dtype, requireTokenizer: true);
        var tokenizer = loaded.RequireTokenizer();
        var ids = tokenizer.Encode(prompt, addSpecial: true);
        if (ids.Length == 0)
        {
            if (tokenizer.BosId is int bos) ids = new[] { bos };
            else throw new EngineException($"{path}: empty prompt and the tokenizer has no BOS token to start from");
        }
        var generator = new TextGenerator(loaded.Model, tokenizer.EosId, tokenizer.PadId ?? 0);
        var output = generator.Generate(new[] { ids }, options)[0];
        Console.WriteLine(tokenizer.Decode(output));
        return 0;
    }
}
