using Engine.Models;
using static Engine.Gguf.GgufKeys;

namespace Engine.Gguf;

/// <summary>
/// The model metadata of a GGUF file, through the <see cref="GgufKeys"/> table: general.* here, the architecture's
/// hyper-parameters in <see cref="GgufArchitectureMetadata"/>. Written from a <see cref="LlamaConfig"/> on export, read
/// back into one on import.
/// </summary>
public static class GgufModelMetadata
{
    /// <summary>Metadata entries describing the model (general.* and {arch}.*), in the order llama.cpp's converter writes them.</summary>
    public static IReadOnlyList<KeyValuePair<string, GgufValue>> Build(LlamaConfig config, string name, GgufExportType fileType, bool anyQuantized, int vocabSize)
    {
        var arch = GgufArchitectures.For(config.Family);
        var m = new GgufMetadataBuilder(arch.Name);
        m.Add(Architecture, arch.Name);
        m.Add(ModelName, name);
        m.Add(FileType, GgufExportTypes.FileType(fileType));
        if (anyQuantized) m.Add(QuantizationVersion, 2);
        GgufArchitectureMetadata.Build(m, config, arch, vocabSize);
        return m.Entries;
    }

    /// <summary>The architecture a file declares, if Engine supports it.</summary>
    public static GgufArchitecture ArchitectureOf(GgufFile file)
    {
        string arch = file.GetString(Architecture) ?? throw new EngineException($"{file.Source}: missing {Architecture}");
        return GgufArchitectures.ByName(arch)
            ?? throw new EngineException($"{file.Source}: unsupported architecture '{arch}' (supported: {GgufArchitectures.Names})");
    }

    /// <summary>Builds the model config from a GGUF file's metadata and tensor shapes.</summary>
    public static LlamaConfig ReadConfig(GgufFile file) => GgufArchitectureMetadata.ReadConfig(file, ArchitectureOf(file));
}
