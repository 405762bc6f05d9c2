namespace Engine.Models;

/// <summary>
/// Named model shapes for benchmarks and memory planning (no weights). The published models carry the values of
/// their config.json on the Hugging Face hub (the -Instruct repositories where a base and an instruct model exist;
/// the two share the architecture).
/// </summary>
public static class ModelPresets
{
    static LlamaConfig Llama => LlamaConfig.ForFamily(ModelFamily.Llama);
    static LlamaConfig Qwen2 => LlamaConfig.ForFamily(ModelFamily.Qwen2);
    static LlamaConfig Qwen3 => LlamaConfig.ForFamily(ModelFamily.Qwen3);
    static LlamaConfig Gemma3 => LlamaConfig.ForFamily(ModelFamily.Gemma3);

    /// <summary>Llama 3.2's RoPE: θ 500000 with llama3 scaling ×32 from an 8192-token pre-training context.</summary>
    static LlamaConfig Llama32 => Llama with
    {
        RopeTheta = 500000, RopeScaling = RopeScalingKind.Llama3, RopeScalingFactor = 32, RopeLowFreqFactor = 1, RopeHighFreqFactor = 4,
        RopeOriginalMaxPositions = 8192, MaxPositionEmbeddings = 131072, RmsNormEps = 1e-5, VocabSize = 128256, TieWordEmbeddings = true,
        BosTokenId = 128000, EosTokenId = 128001, TorchDtype = "bfloat16",
    };

    static LlamaConfig SmolLm2 => Llama with
    {
        VocabSize = 49152, MaxPositionEmbeddings = 8192, RmsNormEps = 1e-5, RopeTheta = 100000, TieWordEmbeddings = true,
        BosTokenId = 1, EosTokenId = 2, PadTokenId = 2, TorchDtype = "bfloat16",
    };

    static LlamaConfig Qwen25 => Qwen2 with
    {
        VocabSize = 151936, MaxPositionEmbeddings = 32768, RmsNormEps = 1e-6, RopeTheta = 1_000_000, TieWordEmbeddings = true,
        BosTokenId = 151643, EosTokenId = 151645, TorchDtype = "bfloat16",
    };

    static LlamaConfig Qwen3Small => Qwen3 with
    {
        VocabSize = 151936, MaxPositionEmbeddings = 40960, RmsNormEps = 1e-6, RopeTheta = 1_000_000, TieWordEmbeddings = true, HeadDim = 128,
        BosTokenId = 151643, EosTokenId = 151645, TorchDtype = "bfloat16",
    };

    public static readonly IReadOnlyDictionary<string, LlamaConfig> All = new Dictionary<string, LlamaConfig>
    {
        // Synthetic Llama used by the throughput benchmarks: 25M parameters besides the embedding and the head.
        ["bench-25m"] = Llama with
        {
            HiddenSize = 512, IntermediateSize = 1536, NumLayers = 8, NumHeads = 8,
            NumKvHeads = 4, HeadDim = 64, VocabSize = 32000, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000,
            BosTokenId = 1, EosTokenId = 2,
        },
        // The seed setting's model (alignment.md): 351,573,120 parameters.
        ["minerva-350m"] = LlamaConfig.ForFamily(ModelFamily.Mistral) with
        {
            HiddenSize = 1152, IntermediateSize = 4032, NumLayers = 16, NumHeads = 16,
            NumKvHeads = 4, HeadDim = 72, VocabSize = 32768, MaxPositionEmbeddings = 16384, RmsNormEps = 1e-5, RopeTheta = 10000,
            SlidingWindow = 2048, BosTokenId = 1, EosTokenId = 2, TorchDtype = "bfloat16",
        },
        ["tinyllama-1.1b"] = Llama with
        {
            HiddenSize = 2048, IntermediateSize = 5632, NumLayers = 22, NumHeads = 32,
            NumKvHeads = 4, HeadDim = 64, VocabSize = 32000, MaxPositionEmbeddings = 2048, RmsNormEps = 1e-5, RopeTheta = 10000,
            BosTokenId = 1, EosTokenId = 2, TorchDtype = "bfloat16",
        },
        ["smollm2-135m"] = SmolLm2 with { HiddenSize = 576, IntermediateSize = 1536, NumLayers = 30, NumHeads = 9, NumKvHeads = 3, HeadDim = 64 },
        ["smollm2-360m"] = SmolLm2 with { HiddenSize = 960, IntermediateSize = 2560, NumLayers = 32, NumHeads = 15, NumKvHeads = 5, HeadDim = 64 },
        ["smollm2-1.7b"] = SmolLm2 with { HiddenSize = 2048, IntermediateSize = 8192, NumLayers = 24, NumHeads = 32, NumKvHeads = 32, HeadDim = 64, RopeTheta = 130000 },
        ["qwen2.5-0.5b"] = Qwen25 with { HiddenSize = 896, IntermediateSize = 4864, NumLayers = 24, NumHeads = 14, NumKvHeads = 2, HeadDim = 64 },
        ["qwen2.5-1.5b"] = Qwen25 with { HiddenSize = 1536, IntermediateSize = 8960, NumLayers = 28, NumHeads = 12, NumKvHeads = 2, HeadDim = 128 },
        ["qwen3-0.6b"] = Qwen3Small with { HiddenSize = 1024, IntermediateSize = 3072, NumLayers = 28, NumHeads = 16, NumKvHeads = 8 },
        ["qwen3-1.7b"] = Qwen3Small with { HiddenSize = 2048, IntermediateSize = 6144, NumLayers = 28, NumHeads = 16, NumKvHeads = 8 },
        ["llama-3.2-1b"] = Llama32 with { HiddenSize = 2048, IntermediateSize = 8192, NumLayers = 16, NumHeads = 32, NumKvHeads = 8, HeadDim = 64 },
        ["llama-3.2-3b"] = Llama32 with { HiddenSize = 3072, IntermediateSize = 8192, NumLayers = 28, NumHeads = 24, NumKvHeads = 8, HeadDim = 128 },
        ["gemma-3-1b"] = Gemma3 with
        {
            HiddenSize = 1152, IntermediateSize = 6912, NumLayers = 26, NumHeads = 4, NumKvHeads = 1, HeadDim = 256, VocabSize = 262144,
            MaxPositionEmbeddings = 32768, RmsNormEps = 1e-6, RopeTheta = 1_000_000, LocalRopeTheta = 10000, SlidingWindow = 512,
            SlidingWindowPattern = 6, QueryPreAttnScalar = 256, BosTokenId = 2, EosTokenId = 1, PadTokenId = 0, TorchDtype = "bfloat16",
        },
    };

    public static LlamaConfig Get(string name) =>
        All.TryGetValue(name, out var c) ? c
            : throw new EngineException($"unknown model preset '{name}' (known: {string.Join(", ", All.Keys)})");
}
