using Engine.Models;

namespace Engine.Gguf;

/// <summary>
/// Opens a llama-architecture GGUF file as <see cref="ModelParts"/> (registered in <see cref="ModelLoader.FileFormats"/>
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
        var weights = new GgufWeightSource(file, config);
        string storage = string.Join("/", file.Tensors.Select(t => GgmlTypes.Name(t.Type).ToUpperInvariant()).Distinct().OrderBy(s => s, StringComparer.Ordinal));
        return new ModelParts(config, weights, tokenizer, storage);
    }
}
