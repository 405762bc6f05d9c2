using Engine.Adapters;
using Engine.Cli.Options;
using Engine.Generation;
using Engine.Models;
using Engine.Util;

namespace Engine.Cli.Commands;

public sealed record GenerateArgs
{
    public string Model { get; init; } = "";
    public string? Prompt { get; init; }
    public SamplingOptions Sampling { get; init; } = new();
    public string Dtype { get; init; } = "f32";
    public string? Adapter { get; init; }
}

public sealed class GenerateCommand : CliCommand<GenerateArgs>
{
    public override string Name => "generate";
    public override string Summary => "Continue a prompt with a model (temperature 0 = greedy).";
    protected override GenerateArgs Defaults => new();

    static CliOption<GenerateArgs> Sampling(CliOption<SamplingOptions> o) => o.Lift<GenerateArgs>(a => a.Sampling, (a, s) => a with { Sampling = s });

    protected override IReadOnlyList<CliOption<GenerateArgs>> Options { get; } = new[]
    {
        Opt<GenerateArgs>.String("model", "a Hugging Face folder or a GGUF file", a => a.Model, (a, v) => a with { Model = v }, valueName: "DIR|FILE.gguf", required: true),
        Opt<GenerateArgs>.String("adapter", "a PEFT LoRA adapter folder applied to --model", a => a.Adapter, (a, v) => a with { Adapter = v }, valueName: "DIR"),
        Opt<GenerateArgs>.String("prompt", "the text to continue (\"\" starts from BOS)", a => a.Prompt, (a, v) => a with { Prompt = v }, required: true),
        Sampling(Opt<SamplingOptions>.Int("max-new-tokens", "tokens to generate", s => s.MaxNewTokens, (s, v) => s with { MaxNewTokens = v }, min: 0)),
        Sampling(Opt<SamplingOptions>.Double("temperature", "sampling temperature (0: greedy)", s => s.Temperature, (s, v) => s with { Temperature = v }, valueName: "T")),
        Sampling(Opt<SamplingOptions>.Double("top-p", "nucleus sampling mass", s => s.TopP, (s, v) => s with { TopP = v }, valueName: "P")),
        Sampling(Opt<SamplingOptions>.OptionalInt("top-k", "sample among the K most likely tokens", s => s.TopK, (s, v) => s with { TopK = v }, valueName: "K")),
        Sampling(Opt<SamplingOptions>.Long("seed", "sampling seed", s => s.Seed, (s, v) => s with { Seed = v }, valueName: "S")),
        Opt<GenerateArgs>.Choice("dtype", "compute dtype", new[] { "f32", "bf16" }, v => v, a => a.Dtype, (a, v) => a with { Dtype = v }),
    };

    protected override int Execute(Parsed<GenerateArgs> parsed, CliContext context)
    {
        var a = parsed.Value;
        a.Sampling.Validate();
        using var adapted = AdaptedModel.Load(a.Model, a.Adapter, TensorMemory.ParseDtype(a.Dtype), requireTokenizer: true);
        var loaded = adapted.Base;
        var tokenizer = loaded.RequireTokenizer();
        var ids = tokenizer.Encode(a.Prompt!, addSpecial: true);
        if (ids.Length == 0)
        {
            if (tokenizer.BosId is int bos) ids = new[] { bos };
            else throw new EngineException($"{a.Model}: empty prompt and the tokenizer has no BOS token to start from");
        }
        var generator = new TextGenerator(loaded.Model, tokenizer.EosId, tokenizer.PadId ?? 0);
        var output = generator.Generate(new[] { ids }, a.Sampling)[0];
        context.Out.WriteLine(tokenizer.Decode(output));
        return 0;
    }
}
