namespace Engine.Models;

/// <summary>Named model shapes for benchmarks and memory planning (no weights).</summary>
public static class ModelPresets
{
    public static readonly IReadOnlyDictionary<string, LlamaConfig> All = new Dictionary<string, LlamaConfig>
    {
        // Synthetic ~25M-parameter Llama used by the throughput benchmarks.
        ["bench-25m"] = new()
        {
            Architecture = "LlamaForCausalLM", HiddenSize = 512, IntermediateSize = 1536, NumLayers = 8, NumHeads = 8,
            NumKvHeads = 4, HeadDim = 64, VocabSize = 32000, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000,
            BosTokenId = 1, EosTokenId = 2,
        },
        // The seed setting's model (alignment.md): 351,573,120 parameters.
        ["minerva-350m"] = new()
        {
            Architecture = "MistralForCausalLM", HiddenSize = 1152, IntermediateSize = 4032, NumLayers = 16, NumHeads = 16,
            NumKvHeads = 4, HeadDim = 72, VocabSize = 32768, MaxPositionEmbeddings = 16384, RmsNormEps = 1e-5, RopeTheta = 10000,
            SlidingWindow = 2048, BosTokenId = 1, EosTokenId = 2, TorchDtype = "bfloat16",
        },
        ["tinyllama-1.1b"] = new()
        {
            Architecture = "LlamaForCausalLM", HiddenSize = 2048, IntermediateSize = 5632, NumLayers = 22, NumHeads = 32,
            NumKvHeads = 4, HeadDim = 64, VocabSize = 32000, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000,
            BosTokenId = 1, EosTokenId = 2, TorchDtype = "bfloat16",
        },
        ["llama-3.2-1b"] = new()
        {
            Architecture = "LlamaForCausalLM", HiddenSize = 2048, IntermediateSize = 8192, NumLayers = 16, NumHeads = 32,
            NumKvHeads = 8, HeadDim = 64, VocabSize = 128256, MaxPositionEmbeddings = 131072, RmsNormEps = 1e-5, RopeTheta = 500000,
            TieWordEmbeddings = true, BosTokenId = 128000, EosTokenId = 128001, TorchDtype = "bfloat16",
        },
    };

    public static LlamaConfig Get(string name) =>
        All.TryGetValue(name, out var c) ? c
            : throw new EngineException($"unknown model preset '{name}' (known: {string.Join(", ", All.Keys)})");
}
