using Engine.Tokenization;
using Engine.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Engine.Models;

/// <summary>A model with its config and tokenizer, as loaded from a folder or file.</summary>
public sealed class LoadedModel : IDisposable
{
    public required string Source { get; init; }
    public required LlamaConfig Config { get; init; }
    public required LlamaForCausalLM Model { get; init; }
    public TextTokenizer? Tokenizer { get; init; }
    /// <summary>The on-disk dtype of the weights (e.g. F32, BF16, Q8_0 for GGUF).</summary>
    public string StorageDtype { get; init; } = "";

    public TextTokenizer RequireTokenizer() =>
        Tokenizer ?? throw new EngineException($"{Source}: no tokenizer found (expected tokenizer.model or tokenizer.json)");

    public void Dispose() => Model.Dispose();
}

/// <summary>What a model file format yields: config, tensors in HF naming, and the tokenizer.</summary>
public sealed record ModelParts(LlamaConfig Config, IWeightSource Weights, TextTokenizer? Tokenizer, string StorageDtype);

public static class ModelLoader
{
    static readonly System.Collections.Concurrent.ConcurrentDictionary<string, Func<string, ModelParts>> FileFormats = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Adds a single-file model format (by extension). Formats register themselves (GGUF does, in Engine.Gguf), so
    /// this folder knows none of them.
    /// </summary>
    public static void RegisterFileFormat(string extension, Func<string, ModelParts> open) => FileFormats[extension] = open;

    /// <summary>Names some HF checkpoints carry that are derived buffers, not parameters.</summary>
    static bool IsIgnorable(string name) => name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal);

    public static LoadedModel Load(string path, ScalarType dtype = ScalarType.Float32, bool requireTokenizer = false)
    {
        var parts = OpenParts(path);
        using var weights = parts.Weights;
        var model = Build(parts.Config, weights, dtype);
        if (requireTokenizer && parts.Tokenizer is null)
            throw new EngineException($"{path}: no tokenizer found (expected tokenizer.model or tokenizer.json)");
        return new LoadedModel { Source = path, Config = parts.Config, Model = model, Tokenizer = parts.Tokenizer, StorageDtype = parts.StorageDtype };
    }

    /// <summary>Config, weight source and tokenizer without building the model (for `info`).</summary>
    public static ModelParts OpenParts(string path)
    {
        if (File.Exists(path))
        {
            string ext = Path.GetExtension(path);
            if (FileFormats.TryGetValue(ext, out var open)) return open(path);
            throw new EngineException($"{path}: not a model folder and not a supported model file (supported: {string.Join(", ", FileFormats.Keys.DefaultIfEmpty("none"))})");
        }
        if (!Directory.Exists(path)) throw new EngineException($"{path}: model folder not found");
        var config = LlamaConfig.Load(Path.Combine(path, "config.json"));
        var tokenizer = TokenizerLoader.TryLoad(path);
        var weights = new SafetensorsWeightSource(path);
        string storage = string.Join("/", weights.Names.Select(n => ((SafetensorsWeightSource)weights).DtypeOf(n)).Distinct().OrderBy(s => s));
        return new ModelParts(config, weights, tokenizer, storage);
    }

    /// <summary>Builds the model and fills it from <paramref name="weights"/>, strictly: every parameter must be
    /// present with the right shape, and nothing unexpected may be left over.</summary>
    public static LlamaForCausalLM Build(LlamaConfig config, IWeightSource weights, ScalarType dtype)
    {
        var model = new LlamaForCausalLM(config, dtype);
        try
        {
            var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var available = new HashSet<string>(weights.Names);
            var missing = parameters.Keys.Where(n => !available.Contains(n)).ToList();
            var unexpected = available.Where(n => !parameters.ContainsKey(n) && !IsIgnorable(n)
                && !(config.TieWordEmbeddings && n == "lm_head.weight")).OrderBy(n => n).ToList();
            if (missing.Count > 0)
                throw new EngineException($"{weights.Description}: missing tensors: {Summarize(missing)}");
            if (unexpected.Count > 0)
                throw new EngineException($"{weights.Description}: unexpected tensors: {Summarize(unexpected)}");
            foreach (var (name, p) in parameters)
            {
                var shape = weights.Shape(name);
                if (!shape.SequenceEqual(p.shape))
                    throw new EngineException($"{weights.Description}: tensor '{name}' has shape [{string.Join(", ", shape)}], expected [{string.Join(", ", p.shape)}]");
            }
            using var noGrad = torch.no_grad();
            foreach (var (name, p) in parameters)
            {
                using var t = weights.Read(name);
                p.copy_(t);
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    static string Summarize(List<string> names) =>
        names.Count <= 8 ? string.Join(", ", names) : string.Join(", ", names.Take(8)) + $" and {names.Count - 8} more";

    /// <summary>
    /// Saves in Hugging Face layout (config.json, safetensors, tokenizer files) into a new folder, atomically.
    /// </summary>
    /// <param name="weightOverrides">tensors to write instead of the model's own (e.g. fp32 master weights of a bf16 model)</param>
    public static void Save(LlamaForCausalLM model, TextTokenizer? tokenizer, string directory, ScalarType dtype,
        long maxShardBytes = long.MaxValue, bool replace = false, IReadOnlyDictionary<string, Tensor>? weightOverrides = null)
    {
        AtomicDirectory.Write(directory, tmp => SaveInto(model, tokenizer, tmp, dtype, maxShardBytes, weightOverrides), replace);
    }

    public static void SaveInto(LlamaForCausalLM model, TextTokenizer? tokenizer, string directory, ScalarType dtype,
        long maxShardBytes = long.MaxValue, IReadOnlyDictionary<string, Tensor>? weightOverrides = null)
    {
        var config = model.Config with { TorchDtype = TensorMemory.DtypeName(dtype) };
        config.Save(Path.Combine(directory, "config.json"));
        var weights = model.named_parameters()
            .Select(p => (p.name, weightOverrides != null && weightOverrides.TryGetValue(p.name, out var w) ? w : (Tensor)p.parameter)).ToList();
        SafetensorsWriter.WriteModel(directory, weights, dtype, maxShardBytes);
        tokenizer?.SaveTo(directory);
    }
}
