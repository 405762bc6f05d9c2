using Engine.Models;
using static Engine.Gguf.GgufKeys;

namespace Engine.Gguf;

/// <summary>
/// The llama-architecture metadata: written from a <see cref="LlamaConfig"/> on export, read back into one on import,
/// both through the <see cref="GgufKeys"/> table.
/// </summary>
public static class GgufModelMetadata
{
    public const string LlamaArchitecture = "llama";

    /// <summary>Metadata entries describing the model (general.* and llama.*), in the order llama.cpp's converter writes them.</summary>
    public static IReadOnlyList<KeyValuePair<string, GgufValue>> Build(LlamaConfig config, string name, GgufExportType fileType, bool anyQuantized, int vocabSize)
    {
        var m = new GgufMetadataBuilder(LlamaArchitecture);
        m.Add(Architecture, LlamaArchitecture);
        m.Add(ModelName, name);
        m.Add(FileType, GgufExportTypes.FileType(fileType));
        if (anyQuantized) m.Add(QuantizationVersion, 2);
        m.Add(VocabSize, vocabSize);
        m.Add(ContextLength, config.MaxPositionEmbeddings);
        m.Add(EmbeddingLength, config.HiddenSize);
        m.Add(BlockCount, config.NumLayers);
        m.Add(FeedForwardLength, config.IntermediateSize);
        m.Add(RopeDimensionCount, config.HeadDim);
        m.Add(HeadCount, config.NumHeads);
        m.Add(HeadCountKv, config.NumKvHeads);
        if (config.HeadDim * config.NumHeads != config.HiddenSize)
        {
            m.Add(KeyLength, config.HeadDim);
            m.Add(ValueLength, config.HeadDim);
        }
        m.Add(RmsNormEpsilon, (float)config.RmsNormEps);
        m.Add(RopeFreqBase, (float)config.RopeTheta);
        if (config.RopeScaling == RopeScalingKind.Linear)
        {
            m.Add(RopeScalingType, "linear");
            m.Add(RopeScalingFactor, (float)config.RopeScalingFactor);
        }
        return m.Entries;
    }

    /// <summary>Builds the model config from a GGUF file's metadata and tensor shapes.</summary>
    public static LlamaConfig ReadConfig(GgufFile file)
    {
        string src = file.Source;
        string arch = file.GetString(Architecture) ?? throw new EngineException($"{src}: missing {Architecture}");
        if (arch != LlamaArchitecture)
            throw new EngineException($"{src}: unsupported architecture '{arch}' (supported: {LlamaArchitecture})");
        int hidden = file.RequireInt(EmbeddingLength, arch);
        int heads = file.RequireInt(HeadCount, arch);
        int kvHeads = file.GetInt(HeadCountKv, arch) ?? heads;
        int headDim = file.GetInt(KeyLength, arch) ?? file.GetInt(RopeDimensionCount, arch) ?? (heads > 0 ? hidden / heads : 0);
        if (file.GetInt(ValueLength, arch) is int vl && vl != headDim)
            throw new EngineException($"{src}: {ValueLength.Name(arch)} {vl} differs from the key length {headDim} (not supported)");
        if (file.GetInt(RopeDimensionCount, arch) is int rot && rot != headDim)
            throw new EngineException($"{src}: partial rotary embeddings ({RopeDimensionCount.Name(arch)} {rot} < head size {headDim}) are not supported");
        int vocab = file.Get(Tokens) is { Type: GgufValueType.Array } tokens
            ? ((Array)tokens.Value).Length
            : file.GetInt(VocabSize, arch)
              ?? (file.TryGetTensor("token_embd.weight", out var emb) && emb.Dims.Length == 2 ? checked((int)emb.Dims[1]) : 0);
        var scaling = RopeScalingKind.None;
        double factor = 1;
        string? scalingType = file.GetString(RopeScalingType, arch);
        switch (scalingType)
        {
            case null or "none": break;
            case "linear":
                scaling = RopeScalingKind.Linear;
                factor = file.GetDouble(RopeScalingFactor, arch) ?? throw new EngineException($"{src}: linear RoPE scaling without {RopeScalingFactor.Name(arch)}");
                if (!(factor > 0)) throw new EngineException($"{src}: {RopeScalingFactor.Name(arch)} must be positive");
                break;
            default: throw new EngineException($"{src}: RoPE scaling '{scalingType}' is not supported (supported: linear)");
        }
        double eps = file.GetDouble(RmsNormEpsilon, arch) ?? 1e-5;
        double theta = file.GetDouble(RopeFreqBase, arch) ?? 10000.0;
        if (!(eps > 0) || !(theta > 0)) throw new EngineException($"{src}: RMS norm epsilon and RoPE base must be positive");
        var config = new LlamaConfig
        {
            Architecture = "LlamaForCausalLM",
            HiddenSize = hidden,
            IntermediateSize = file.RequireInt(FeedForwardLength, arch),
            NumLayers = file.RequireInt(BlockCount, arch),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            MaxPositionEmbeddings = file.GetInt(ContextLength, arch) ?? 2048,
            RmsNormEps = eps,
            RopeTheta = theta,
            RopeScaling = scaling,
            RopeScalingFactor = factor,
            TieWordEmbeddings = !file.TryGetTensor("output.weight", out _),
            BosTokenId = file.GetInt(BosTokenId),
            EosTokenId = file.GetInt(EosTokenId),
            PadTokenId = file.GetInt(PaddingTokenId),
            TorchDtype = "float32",
        };
        config.Validate(src);
        return config;
    }
}
