namespace Engine.Models;

public enum RopeScalingKind { None, Linear, Dynamic, Llama3 }

/// <summary>How an RMSNorm applies its weight: HF Llama's <c>w · x̂</c> (cast first), or Gemma's <c>(1 + w) · x̂</c> in fp32.</summary>
public enum NormStyle { Weight, UnitOffset }

/// <summary>The gate activation of the gated MLP: SwiGLU (silu) or GeGLU with tanh-approximated GELU.</summary>
public enum MlpActivation { Silu, GeluTanh }

/// <summary>Whether a layer attends over the whole prefix or only the last <see cref="LlamaConfig.SlidingWindow"/> keys.</summary>
public enum LayerAttention { Full, Sliding }

/// <summary>RoPE for one kind of layer: base, scaling and the context it was trained for.</summary>
public sealed record RopeSpec(double Theta, RopeScalingKind Scaling = RopeScalingKind.None, double Factor = 1,
    double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositions = 8192, int MaxPositions = 2048);

/// <summary>
/// Everything that defines a decoder of the supported families (<see cref="ModelFamily"/>): the Llama shape plus the
/// parts other families add (q/k/v biases, q/k norms, Gemma's norms, GeGLU, scaled embeddings, sliding-window layers
/// with their own RoPE base, final logit soft-capping). The blocks are chosen from these fields once, when the model is
/// built; config.json is read and written by <see cref="HfConfigReader"/> and <see cref="HfConfigWriter"/>.
/// </summary>
public sealed record LlamaConfig
{
    public string Architecture { get; init; } = "LlamaForCausalLM";
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumLayers { get; init; }
    public int NumHeads { get; init; }
    public int NumKvHeads { get; init; }
    /// <summary>Per-head dimension; HF allows it to differ from hidden/heads.</summary>
    public int HeadDim { get; init; }
    public int VocabSize { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-6;
    /// <summary>RoPE base of full-attention layers (and of sliding layers when <see cref="LocalRopeTheta"/> is null).</summary>
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScalingKind RopeScaling { get; init; } = RopeScalingKind.None;
    public double RopeScalingFactor { get; init; } = 1.0;
    /// <summary>llama3 scaling: wavelengths above original/low are divided by the factor, below original/high kept.</summary>
    public double RopeLowFreqFactor { get; init; } = 1.0;
    public double RopeHighFreqFactor { get; init; } = 4.0;
    /// <summary>llama3 scaling: the context the model was pre-trained with.</summary>
    public int RopeOriginalMaxPositions { get; init; } = 8192;
    /// <summary>RoPE base of sliding-window layers, unscaled (Gemma 3's rope_local_base_freq); null: as full layers.</summary>
    public double? LocalRopeTheta { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>The attention window of sliding layers; null when every layer attends fully.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>Every n-th layer (n-1, 2n-1, …) attends fully, the others slide (Gemma 3: 6); null: all layers slide
    /// when <see cref="SlidingWindow"/> is set (Mistral).</summary>
    public int? SlidingWindowPattern { get; init; }
    /// <summary>q_proj, k_proj and v_proj carry biases (Qwen2).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3).</summary>
    public bool QkNorm { get; init; }
    public NormStyle Norm { get; init; } = NormStyle.Weight;
    /// <summary>Four norms per layer: attention and MLP outputs are normalised before their residual sums (Gemma 3).</summary>
    public bool SandwichNorms { get; init; }
    public MlpActivation Activation { get; init; } = MlpActivation.Silu;
    /// <summary>Embeddings are multiplied by √hidden, rounded to the model dtype (Gemma).</summary>
    public bool ScaleEmbeddings { get; init; }
    /// <summary>Attention scores are scaled by this^-½ instead of head_dim^-½ (Gemma's query_pre_attn_scalar).</summary>
    public double? QueryPreAttnScalar { get; init; }
    /// <summary>Logits become cap·tanh(logits / cap) (final_logit_softcapping); null: none.</summary>
    public double? FinalLogitSoftcapping { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    public int? PadTokenId { get; init; }
    /// <summary>The dtype the checkpoint declares (<c>torch_dtype</c>), e.g. float32 or bfloat16.</summary>
    public string TorchDtype { get; init; } = "float32";

    public ModelFamily Family => ModelFamilies.ByArchitecture(Architecture)?.Family
        ?? throw new EngineException($"unsupported architecture '{Architecture}' (supported: {ModelFamilies.SupportedArchitectures})");
    public int QueryDim => NumHeads * HeadDim;
    public int KvDim => NumKvHeads * HeadDim;

    /// <summary>A config with the fixed traits of <paramref name="family"/> (sizes still to be set).</summary>
    public static LlamaConfig ForFamily(ModelFamily family) => family switch
    {
        ModelFamily.Qwen2 => new() { Architecture = ModelFamilies.Of(family).Architecture, AttentionBias = true },
        ModelFamily.Qwen3 => new() { Architecture = ModelFamilies.Of(family).Architecture, QkNorm = true },
        ModelFamily.Gemma3 => new()
        {
            Architecture = ModelFamilies.Of(family).Architecture, QkNorm = true, Norm = NormStyle.UnitOffset, SandwichNorms = true,
            Activation = MlpActivation.GeluTanh, ScaleEmbeddings = true, TieWordEmbeddings = true, SlidingWindowPattern = 6,
            LocalRopeTheta = 10000.0, RopeTheta = 1_000_000.0,
        },
        _ => new() { Architecture = ModelFamilies.Of(family).Architecture },
    };

    public LayerAttention AttentionOf(int layer) =>
        SlidingWindow is null ? LayerAttention.Full
        : SlidingWindowPattern is int n && (layer + 1) % n == 0 ? LayerAttention.Full
        : LayerAttention.Sliding;

    /// <summary>RoPE of full-attention layers (scaled as configured).</summary>
    public RopeSpec GlobalRope => new(RopeTheta, RopeScaling, RopeScalingFactor, RopeLowFreqFactor, RopeHighFreqFactor,
        RopeOriginalMaxPositions, MaxPositionEmbeddings);

    /// <summary>RoPE of a layer: sliding layers use the local base, unscaled, when the model has one.</summary>
    public RopeSpec RopeOf(int layer) =>
        AttentionOf(layer) == LayerAttention.Sliding && LocalRopeTheta is double local
            ? new RopeSpec(local, MaxPositions: MaxPositionEmbeddings)
            : GlobalRope;

    /// <summary>The factor q is multiplied by so that SDPA's head_dim^-½ gives the model's attention scale.</summary>
    public double QueryPreScale => QueryPreAttnScalar is double s ? Math.Sqrt(HeadDim / s) : 1.0;

    public long ParameterCount()
    {
        long h = HiddenSize, f = IntermediateSize, v = VocabSize;
        long attn = h * QueryDim + 2 * h * KvDim + QueryDim * h
            + (AttentionBias ? QueryDim + 2L * KvDim : 0)
            + (QkNorm ? 2L * HeadDim : 0);
        long mlp = 3 * h * f;
        long perLayer = attn + mlp + (SandwichNorms ? 4 : 2) * h;
        return v * h + NumLayers * perLayer + h + (TieWordEmbeddings ? 0 : v * h);
    }

    public static LlamaConfig Load(string path) => HfConfigReader.Load(path);

    public static LlamaConfig FromJson(System.Text.Json.Nodes.JsonObject obj, string source) => HfConfigReader.FromJson(obj, source);

    public System.Text.Json.Nodes.JsonObject ToJson() => HfConfigWriter.ToJson(this);

    public void Save(string path) => HfConfigWriter.Save(this, path);

    public void Validate(string source)
    {
        void Positive(int v, string name) { if (v <= 0) throw new EngineException($"{source}: {name} must be positive (got {v})"); }
        void PositiveReal(double? v, string name) { if (v is double d && !(d > 0 && double.IsFinite(d))) throw new EngineException($"{source}: {name} must be positive (got {d})"); }
        if (ModelFamilies.ByArchitecture(Architecture) is null)
            throw new EngineException($"{source}: unsupported architecture '{Architecture}' (supported: {ModelFamilies.SupportedArchitectures})");
        Positive(HiddenSize, "hidden_size"); Positive(IntermediateSize, "intermediate_size"); Positive(NumLayers, "num_hidden_layers");
        Positive(NumHeads, "num_attention_heads"); Positive(NumKvHeads, "num_key_value_heads"); Positive(HeadDim, "head_dim");
        Positive(VocabSize, "vocab_size"); Positive(MaxPositionEmbeddings, "max_position_embeddings");
        if (NumHeads % NumKvHeads != 0) throw new EngineException($"{source}: num_attention_heads ({NumHeads}) must be a multiple of num_key_value_heads ({NumKvHeads})");
        if (HeadDim % 2 != 0) throw new EngineException($"{source}: head_dim ({HeadDim}) must be even for RoPE");
        PositiveReal(RmsNormEps, "rms_norm_eps");
        PositiveReal(RopeTheta, "rope_theta");
        PositiveReal(LocalRopeTheta, "rope_local_base_freq");
        PositiveReal(RopeScalingFactor, "rope_scaling factor");
        PositiveReal(QueryPreAttnScalar, "query_pre_attn_scalar");
        PositiveReal(FinalLogitSoftcapping, "final_logit_softcapping");
        if (SlidingWindow is int w && w <= 0) throw new EngineException($"{source}: sliding_window must be positive (got {w})");
        // Only these families' configs can state a window; another family's checkpoint would silently lose it.
        if (SlidingWindow != null && Family is not (ModelFamily.Mistral or ModelFamily.Gemma3))
            throw new EngineException($"{source}: sliding windows are supported for Mistral and Gemma 3 models, not {ModelFamilies.Of(Family).ModelType}");
        if (SlidingWindowPattern is int n && n <= 0) throw new EngineException($"{source}: sliding_window_pattern must be positive (got {n})");
        if (RopeScaling == RopeScalingKind.Llama3)
        {
            PositiveReal(RopeLowFreqFactor, "rope_scaling low_freq_factor");
            PositiveReal(RopeHighFreqFactor, "rope_scaling high_freq_factor");
            Positive(RopeOriginalMaxPositions, "rope_scaling original_max_position_embeddings");
            if (!(RopeHighFreqFactor > RopeLowFreqFactor))
                throw new EngineException($"{source}: llama3 rope_scaling needs high_freq_factor ({RopeHighFreqFactor}) > low_freq_factor ({RopeLowFreqFactor})");
        }
        // Guards against absurd sizes from corrupt configs before anything is allocated.
        if (ParameterCount() > 200_000_000_000L) throw new EngineException($"{source}: implausible model size ({ParameterCount():N0} parameters)");
    }
}
