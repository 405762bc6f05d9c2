using Engine.Models;

namespace Engine.Gguf;

/// <summary>
/// Opens a GGUF file of a supported architecture (<see cref="GgufArchitectures"/>) as <see cref="ModelParts"/> (registered
/// with <see cref="ModelLoader.RegisterFileFormat"/> by <see cref="GgufRegistration"/>
/// for ".gguf"), so `--model FILE.gguf` works wherever a model folder does.
/// </summary>
public static class GgufModelImporter
{
    public static ModelParts Open(string path)
    {
        var file = GgufFile.Open(path);
        try { return FromFile(file); }
        catch { file.Dispose(); throw; }
    }

    /// <summary>Builds the parts from an open file; the weight source takes ownership of it.</summary>
    public static ModelParts FromFile(GgufFile file)
    {
        var arch = GgufModelMetadata.ArchitectureOf(file);
        var config = GgufArchitectureMetadata.ReadConfig(file, arch);
        var tokenizer = GgufTokenizerReader.TryRead(file);
        // Trailing unused [PADn] entries (written to match an embedding with spare rows) need not come back as tokens.
        if (tokenizer != null && tokenizer.VocabSize > config.VocabSize)
            throw new EngineException($"{file.Source}: the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {config.VocabSize}");
        CheckTensors(file, config, arch);
        var weights = new GgufWeightSource(file, config, arch);
        string storage = string.Join("/", file.Tensors.Select(t => GgmlTypes.Name(t.Type).ToUpperInvariant()).Distinct().OrderBy(s => s, StringComparer.Ordinal));
        return new ModelParts(config, weights, tokenizer, storage);
    }

    /// <summary>
    /// Every tensor the config implies must be present with exactly the implied shape, before anything is built:
    /// the model's size is then bounded by the tensor data actually in the file, whatever the metadata claims.
    /// </summary>
    static void CheckTensors(GgufFile file, LlamaConfig config, GgufArchitecture arch)
    {
        // Counted before any name is listed, so a hostile block_count costs nothing.
        bool ropeFreqs = file.TryGetTensor(GgufArchitecture.RopeFrequencies, out _);
        long expectedCount = HfTensorLayout.Count(config) + (ropeFreqs ? 1 : 0);
        if (file.Tensors.Count != expectedCount)
            throw new EngineException($"{file.Source}: {file.Tensors.Count} tensors, but a {arch.Name} model with {config.NumLayers} layers"
                + $"{(config.TieWordEmbeddings ? " and tied embeddings" : "")} has {expectedCount}");
        var expected = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (hf, shape) in HfTensorLayout.Tensors(config))
        {
            string gguf = arch.ToGguf(hf) ?? throw new EngineException($"{file.Source}: tensor '{hf}' has no name in the {arch.Name} architecture");
            expected.Add(hf);
            if (!file.TryGetTensor(gguf, out var t))
                throw new EngineException($"{file.Source}: missing tensor '{gguf}' (the metadata describes {config.NumLayers} layers)");
            if (!t.TorchShape.SequenceEqual(shape))
                throw new EngineException($"{file.Source}: tensor '{gguf}' has dims [{string.Join(", ", t.Dims)}] but the metadata implies [{string.Join(", ", shape.Reverse())}]");
        }
        foreach (var t in file.Tensors)
        {
            if (t.Name == GgufArchitecture.RopeFrequencies) continue; // read into the config's RoPE scaling
            string? hf = arch.ToHf(t.Name);
            if (hf is null || !expected.Contains(hf))
                throw new EngineException($"{file.Source}: unexpected tensor '{t.Name}' for a {arch.Name} model with {config.NumLayers} layers");
        }
    }
}
