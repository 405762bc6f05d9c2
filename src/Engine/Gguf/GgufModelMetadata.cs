using Engine.Models;

namespace Engine.Gguf;

/// <summary>
/// The model metadata of a GGUF file: general.* here, the architecture's hyper-parameters in
/// <see cref="GgufArchitectureMetadata"/>. Written from a <see cref="LlamaConfig"/> on export, read back into one on import.
/// </summary>
public static class GgufModelMetadata
{
    /// <summary>Metadata entries describing the model (general.* and {arch}.*), in the order llama.cpp's converter writes them.</summary>
    public static List<KeyValuePair<string, GgufValue>> Build(LlamaConfig config, string name, GgufExportType fileType, bool anyQuantized, int vocabSize)
    {
        var arch = GgufArchitectures.For(config.Family);
        var m = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.architecture", GgufValue.Str(arch.Name)),
            new("general.name", GgufValue.Str(name)),
        };
        m.AddRange(GgufArchitectureMetadata.Build(config, arch, vocabSize));
        m.Add(new("general.file_type", GgufValue.U32(GgufExportTypes.FileType(fileType))));
        if (anyQuantized) m.Add(new("general.quantization_version", GgufValue.U32(2)));
        return m;
    }

    /// <summary>The architecture a file declares, if Engine supports it.</summary>
    public static GgufArchitecture Architecture(GgufFile file)
    {
        string arch = GetString(file, "general.architecture") ?? throw new EngineException($"{file.Source}: missing general.architecture");
        return GgufArchitectures.ByName(arch)
            ?? throw new EngineException($"{file.Source}: unsupported architecture '{arch}' (supported: {GgufArchitectures.Names})");
    }

    /// <summary>Builds the model config from a GGUF file's metadata and tensor shapes.</summary>
    public static LlamaConfig ReadConfig(GgufFile file) => GgufArchitectureMetadata.ReadConfig(file, Architecture(file));

    static GgufValue? Get(GgufFile f, string key) => f.Metadata.TryGetValue(key, out var v) ? v : null;

    public static string? GetString(GgufFile f, string key)
    {
        var v = Get(f, key);
        if (v is null) return null;
        return v.Type == GgufValueType.String ? (string)v.Value : throw new EngineException($"{f.Source}: {key} must be a string (got {v.Type})");
    }

    /// <summary>An integer key that must fit an int; the u32 "none" marker (0xFFFFFFFF, written for absent ids) reads as null.</summary>
    public static int? GetInt(GgufFile f, string key)
    {
        var v = Get(f, key);
        if (v is null) return null;
        long? n = v.IsInteger ? v.AsInt64() : null;
        if (n is null) throw new EngineException($"{f.Source}: {key} must be an integer (got {v.Type})");
        if (n == uint.MaxValue || n == -1) return null;
        if (n < 0 || n > int.MaxValue) throw new EngineException($"{f.Source}: {key} = {n} is out of range");
        return (int)n;
    }

    static int RequiredInt(GgufFile f, string key) => GetInt(f, key) ?? throw new EngineException($"{f.Source}: missing {key}");

    public static double? GetDouble(GgufFile f, string key)
    {
        var v = Get(f, key);
        if (v is null) return null;
        return v.AsDouble() ?? throw new EngineException($"{f.Source}: {key} must be a number (got {v.Type})");
    }

    public static bool? GetBool(GgufFile f, string key)
    {
        var v = Get(f, key);
        if (v is null) return null;
        return v.Type == GgufValueType.Bool ? (bool)v.Value : throw new EngineException($"{f.Source}: {key} must be a boolean (got {v.Type})");
    }
}
