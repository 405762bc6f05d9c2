using Engine.Models;

namespace Engine.Gguf;

/// <summary>
/// Opens a llama-architecture GGUF file as <see cref="ModelParts"/> (registered with <see cref="ModelLoader.RegisterFileFormat"/> by <see cref="GgufRegistration"/>
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
        var config = GgufModelMetadata.ReadConfig(file);
        var tokenizer = GgufTokenizerReader.TryRead(file);
        if (tokenizer != null && tokenizer.VocabSize != config.VocabSize)
            throw new EngineException($"{file.Source}: the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {config.VocabSize}");
        CheckTensors(file, config);
        var weights = new GgufWeightSource(file, config);
        string storage = string.Join("/", file.Tensors.Select(t => GgmlTypes.Name(t.Type).ToUpperInvariant()).Distinct().OrderBy(s => s, StringComparer.Ordinal));
        return new ModelParts(config, weights, tokenizer, storage);
    }

    /// <summary>
    /// Every tensor the config implies must be present with exactly the implied shape, before anything is built:
    /// the model's size is then bounded by the tensor data actually in the file, whatever the metadata claims.
    /// </summary>
    static void CheckTensors(GgufFile file, LlamaConfig config)
    {
        // Counted before any name is listed, so a hostile block_count costs nothing.
        long expectedCount = 2 + 9L * config.NumLayers + (config.TieWordEmbeddings ? 0 : 1);
        if (file.Tensors.Count != expectedCount)
            throw new EngineException($"{file.Source}: {file.Tensors.Count} tensors, but a llama model with {config.NumLayers} layers"
                + $"{(config.TieWordEmbeddings ? " and tied embeddings" : "")} has {expectedCount}");
        var expected = LlamaTensorNames.HfNames(config).ToHashSet(StringComparer.Ordinal);
        foreach (var hf in expected)
        {
            string gguf = LlamaTensorNames.ToGguf(hf)!;
            if (!file.TryGetTensor(gguf, out var t))
                throw new EngineException($"{file.Source}: missing tensor '{gguf}' (the metadata describes {config.NumLayers} layers)");
            var shape = LlamaTensorNames.ExpectedShape(config, hf)!;
            if (!t.TorchShape.SequenceEqual(shape))
                throw new EngineException($"{file.Source}: tensor '{gguf}' has dims [{string.Join(", ", t.Dims)}] but the metadata implies [{string.Join(", ", shape.Reverse())}]");
        }
        foreach (var t in file.Tensors)
        {
            string? hf = LlamaTensorNames.ToHf(t.Name);
            if (hf is null || !expected.Contains(hf))
                throw new EngineException($"{file.Source}: unexpected tensor '{t.Name}' for a llama model with {config.NumLayers} layers");
        }
    }
}
