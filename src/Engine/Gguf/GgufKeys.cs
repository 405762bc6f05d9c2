using System.Globalization;
using System.Reflection;

namespace Engine.Gguf;

/// <summary>
/// One GGUF metadata key: its name and the value type Engine writes. A per-architecture key is spelled with the
/// placeholder, "{arch}.attention.head_count", and resolved for a model's architecture ("llama.attention.head_count").
/// </summary>
public sealed class GgufKey
{
    public const string ArchitecturePlaceholder = "{arch}";

    public string Template { get; }
    public GgufValueType Type { get; }
    /// <summary>The element type of an array key; null for scalars.</summary>
    public GgufValueType? ElementType { get; }
    public bool IsPerArchitecture => Template.StartsWith(ArchitecturePlaceholder + ".", StringComparison.Ordinal);

    internal GgufKey(string template, GgufValueType type, GgufValueType? elementType = null)
    {
        if ((type == GgufValueType.Array) != (elementType is not null) || elementType == GgufValueType.Array)
            throw new ArgumentException($"{template}: an array key needs a scalar element type, a scalar key none");
        Template = template; Type = type; ElementType = elementType;
    }

    /// <summary>The key as it appears in a file; <paramref name="architecture"/> is required for a per-architecture key.</summary>
    public string Name(string? architecture = null)
    {
        if (!IsPerArchitecture) return Template;
        if (string.IsNullOrEmpty(architecture)) throw new ArgumentException($"{Template} is a per-architecture key: name the architecture");
        return architecture + Template[ArchitecturePlaceholder.Length..];
    }

    /// <summary>Whether <paramref name="value"/> has exactly the type this key is written with.</summary>
    public bool Accepts(GgufValue value) => value.Type == Type && (Type != GgufValueType.Array || value.ElementType == ElementType);

    /// <summary>
    /// <paramref name="value"/> as this key's type: a number is converted (checked: a negative count for a uint32 key
    /// throws), an array must already be the matching .NET array type.
    /// </summary>
    public GgufValue Value(object value)
    {
        if (value is GgufValue v)
            return Accepts(v) ? v : throw new ArgumentException($"{Template} is written as {Describe()}, not {v.Type}");
        if (Type == GgufValueType.Array) return GgufValue.Array(ElementType!.Value, (Array)value);
        var clr = GgufValue.ClrType(Type);
        if (value.GetType() != clr && (Type is GgufValueType.String or GgufValueType.Bool || value is string or bool))
            throw new ArgumentException($"{Template} is written as {Describe()}, not {value.GetType().Name}");
        return GgufValue.Scalar(Type, value.GetType() == clr ? value : Convert.ChangeType(value, clr, CultureInfo.InvariantCulture));
    }

    public string Describe() => Type == GgufValueType.Array ? $"an array of {ElementType}" : Type.ToString();

    public override string ToString() => Template;
}

/// <summary>
/// Every GGUF metadata key Engine writes or reads, each spelled once: the exporter writes through this table and
/// the importer reads through it. A new architecture reuses the "{arch}." keys under its own name; a key that only
/// some architectures have (rope scaling, sliding windows, qk-norm flags…) is added here once and written where it
/// applies. Names and types follow llama.cpp's gguf-py constants.
/// </summary>
public static class GgufKeys
{
    static GgufKey Scalar(string name, GgufValueType type) => new(name, type);
    static GgufKey ArrayOf(string name, GgufValueType element) => new(name, GgufValueType.Array, element);
    const GgufValueType U32 = GgufValueType.UInt32, F32 = GgufValueType.Float32, Str = GgufValueType.String, Bool = GgufValueType.Bool, I32 = GgufValueType.Int32;

    // general.*
    public static readonly GgufKey Architecture = Scalar("general.architecture", Str);
    public static readonly GgufKey ModelName = Scalar("general.name", Str);
    /// <summary>"adapter" in a llama.cpp LoRA adapter file (a model file leaves it out).</summary>
    public static readonly GgufKey FileKind = Scalar("general.type", Str);
    public static readonly GgufKey AdapterType = Scalar("adapter.type", Str);
    /// <summary>llama.cpp scales an adapter by alpha / rank, the rank read from the lora_a tensors.</summary>
    public static readonly GgufKey AdapterLoraAlpha = Scalar("adapter.lora.alpha", F32);
    public static readonly GgufKey FileType = Scalar("general.file_type", U32);
    public static readonly GgufKey QuantizationVersion = Scalar("general.quantization_version", U32);
    public static readonly GgufKey Alignment = Scalar("general.alignment", U32);

    // {arch}.* model hyper-parameters
    public static readonly GgufKey VocabSize = Scalar("{arch}.vocab_size", U32);
    public static readonly GgufKey ContextLength = Scalar("{arch}.context_length", U32);
    public static readonly GgufKey EmbeddingLength = Scalar("{arch}.embedding_length", U32);
    public static readonly GgufKey BlockCount = Scalar("{arch}.block_count", U32);
    public static readonly GgufKey FeedForwardLength = Scalar("{arch}.feed_forward_length", U32);
    public static readonly GgufKey RopeDimensionCount = Scalar("{arch}.rope.dimension_count", U32);
    public static readonly GgufKey RopeFreqBase = Scalar("{arch}.rope.freq_base", F32);
    public static readonly GgufKey RopeScalingType = Scalar("{arch}.rope.scaling.type", Str);
    public static readonly GgufKey RopeScalingFactor = Scalar("{arch}.rope.scaling.factor", F32);
    public static readonly GgufKey HeadCount = Scalar("{arch}.attention.head_count", U32);
    public static readonly GgufKey HeadCountKv = Scalar("{arch}.attention.head_count_kv", U32);
    public static readonly GgufKey KeyLength = Scalar("{arch}.attention.key_length", U32);
    public static readonly GgufKey ValueLength = Scalar("{arch}.attention.value_length", U32);
    public static readonly GgufKey RmsNormEpsilon = Scalar("{arch}.attention.layer_norm_rms_epsilon", F32);
    // sliding-window layers (gemma3) and their RoPE base; soft-capped logits
    public static readonly GgufKey RopeFreqBaseSwa = Scalar("{arch}.rope.freq_base_swa", F32);
    public static readonly GgufKey SlidingWindow = Scalar("{arch}.attention.sliding_window", U32);
    /// <summary>Written as "every n-th layer full"; llama.cpp also reads a per-layer array of booleans (true: sliding).</summary>
    public static readonly GgufKey SlidingWindowPattern = Scalar("{arch}.attention.sliding_window_pattern", U32);
    public static readonly GgufKey FinalLogitSoftcapping = Scalar("{arch}.final_logit_softcapping", F32);

    // tokenizer.*
    public static readonly GgufKey TokenizerModel = Scalar("tokenizer.ggml.model", Str);
    public static readonly GgufKey TokenizerPre = Scalar("tokenizer.ggml.pre", Str);
    public static readonly GgufKey Tokens = ArrayOf("tokenizer.ggml.tokens", Str);
    public static readonly GgufKey Scores = ArrayOf("tokenizer.ggml.scores", F32);
    public static readonly GgufKey TokenTypes = ArrayOf("tokenizer.ggml.token_type", I32);
    public static readonly GgufKey Merges = ArrayOf("tokenizer.ggml.merges", Str);
    public static readonly GgufKey BosTokenId = Scalar("tokenizer.ggml.bos_token_id", U32);
    public static readonly GgufKey EosTokenId = Scalar("tokenizer.ggml.eos_token_id", U32);
    public static readonly GgufKey UnknownTokenId = Scalar("tokenizer.ggml.unknown_token_id", U32);
    public static readonly GgufKey PaddingTokenId = Scalar("tokenizer.ggml.padding_token_id", U32);
    public static readonly GgufKey AddBosToken = Scalar("tokenizer.ggml.add_bos_token", Bool);
    public static readonly GgufKey AddEosToken = Scalar("tokenizer.ggml.add_eos_token", Bool);
    public static readonly GgufKey AddSpacePrefix = Scalar("tokenizer.ggml.add_space_prefix", Bool);
    public static readonly GgufKey RemoveExtraWhitespaces = Scalar("tokenizer.ggml.remove_extra_whitespaces", Bool);
    public static readonly GgufKey ChatTemplate = Scalar("tokenizer.chat_template", Str);

    /// <summary>Every key above (found by reflection, so a new one cannot be left out).</summary>
    public static IReadOnlyList<GgufKey> All { get; } = typeof(GgufKeys)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.FieldType == typeof(GgufKey))
        .Select(f => (GgufKey)f.GetValue(null)!)
        .ToList();

    /// <summary>The table entry a key in a file stands for (per-architecture keys under <paramref name="architecture"/>), or null.</summary>
    public static GgufKey? Find(string name, string? architecture) =>
        All.FirstOrDefault(k => !k.IsPerArchitecture ? k.Template == name : architecture is not null && k.Name(architecture) == name);
}

/// <summary>Metadata entries in the order added, each through a <see cref="GgufKey"/> that fixes its name and type.</summary>
public sealed class GgufMetadataBuilder
{
    readonly List<KeyValuePair<string, GgufValue>> _entries = new();
    readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <summary>The architecture per-architecture keys are written under (null when only general/tokenizer keys are added).</summary>
    public string? Architecture { get; }

    public GgufMetadataBuilder(string? architecture = null) => Architecture = architecture;

    public IReadOnlyList<KeyValuePair<string, GgufValue>> Entries => _entries;

    /// <summary>Adds <paramref name="value"/> under <paramref name="key"/>, converted to the key's type (see <see cref="GgufKey.Value"/>).</summary>
    public GgufMetadataBuilder Add(GgufKey key, object value)
    {
        string name = key.Name(Architecture);
        if (!_names.Add(name)) throw new ArgumentException($"metadata key '{name}' added twice");
        _entries.Add(new(name, key.Value(value)));
        return this;
    }
}
