using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Adapters;

/// <summary>
/// A LoRA adapter in PEFT's folder layout: <c>adapter_config.json</c> (peft_type LORA, r, lora_alpha, …) and
/// <c>adapter_model.safetensors</c> with PEFT's key names, so <c>PeftModel.from_pretrained(base, DIR)</c> loads what
/// Engine writes and Engine loads what PEFT writes.
/// </summary>
public static class PeftAdapterFolder
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";

    public static bool IsAdapterFolder(string dir) => File.Exists(Path.Combine(dir, ConfigFile));

    /// <summary>Writes both files into <paramref name="directory"/> (which must exist).</summary>
    /// <param name="overrides">values to write instead of the live parameters, by PEFT key (fp32 master weights)</param>
    public static void WriteInto(string directory, LoraAdapters adapters, string baseModel, ScalarType dtype,
        IReadOnlyDictionary<string, Tensor>? overrides = null)
    {
        var s = adapters.Settings;
        var targets = adapters.Layers.Select(l => l.Module[(l.Module.LastIndexOf('.') + 1)..]).Distinct().OrderBy(n => n, StringComparer.Ordinal).ToArray();
        var config = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModel,
            ["r"] = s.Rank,
            ["lora_alpha"] = s.Alpha,
            ["lora_dropout"] = s.Dropout,
            ["target_modules"] = new JsonArray(targets.Select(t => (JsonNode)t!).ToArray()),
            ["use_rslora"] = s.UseRslora,
            ["use_dora"] = false,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["init_lora_weights"] = true,
            ["inference_mode"] = true,
            ["modules_to_save"] = null,
            ["layers_to_transform"] = null,
            ["layers_pattern"] = null,
            ["rank_pattern"] = new JsonObject(),
            ["alpha_pattern"] = new JsonObject(),
            ["revision"] = null,
        };
        using var scope = NewDisposeScope();
        var tensors = adapters.NamedParameters()
            .Select(p => (p.Name, (overrides != null && overrides.TryGetValue(p.Name, out var o) ? o : p.Parameter).detach().to(dtype).contiguous()))
            .ToList();
        SafetensorsWriter.Write(Path.Combine(directory, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        File.WriteAllText(Path.Combine(directory, ConfigFile), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>
    /// Reads an adapter folder (Engine's or PEFT's) and attaches it to <paramref name="model"/> in the model's dtype. The
    /// layers are the ones the weights file has tensors for, so layers_to_transform and per-module targeting need no
    /// interpretation; what Engine cannot apply exactly (DoRA, rank/alpha patterns, trained biases, extra saved modules)
    /// is refused by name.
    /// </summary>
    public static LoraAdapters Load(LlamaForCausalLM model, string directory)
    {
        string configPath = Path.Combine(directory, ConfigFile);
        if (!Directory.Exists(directory)) throw new EngineException($"{directory}: adapter folder not found");
        if (!File.Exists(configPath)) throw new EngineException($"{directory}: not a PEFT adapter folder (no {ConfigFile})");
        string weightsPath = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weightsPath))
            throw new EngineException(File.Exists(Path.Combine(directory, "adapter_model.bin"))
                ? $"{directory}: adapter_model.bin (pickle) is not read; save the adapter with safe_serialization=True"
                : $"{directory}: no {WeightsFile}");
        var settings = ReadConfig(configPath);
        using var file = SafetensorsFile.Open(weightsPath);
        var modules = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in file.Entries.Keys)
        {
            string k = Normalise(key);
            if (k.EndsWith(".lora_A.weight", StringComparison.Ordinal)) modules.Add(k[LoraAdapters.PeftPrefix.Length..^".lora_A.weight".Length]);
            else if (!k.EndsWith(".lora_B.weight", StringComparison.Ordinal))
                throw new EngineException($"{weightsPath}: tensor {key} is not a LoRA A/B weight (trained biases, embeddings or saved modules are not supported)");
        }
        if (modules.Count == 0) throw new EngineException($"{weightsPath}: no lora_A tensors");
        var known = LoraAdapters.Targets(model, settings with { TargetModules = new[] { LoraSettings.AllLinear } }).Select(t => t.Module).ToHashSet();
        foreach (var m in modules)
            if (!known.Contains(m)) throw new EngineException($"{weightsPath}: adapter for {m}, which is not a linear layer of this model");
        var firstA = file.Entries.First(e => Normalise(e.Key).EndsWith(".lora_A.weight", StringComparison.Ordinal));
        int rank = (int)firstA.Value.Shape[0];
        if (rank != settings.Rank) throw new EngineException($"{weightsPath}: rank {rank} differs from r = {settings.Rank} in {ConfigFile}");
        settings = settings with { TargetModules = modules.Select(m => m[(m.LastIndexOf('.') + 1)..]).Distinct().ToList() };
        var adapters = LoraAdapters.Attach(model, settings, seed: 0, only: modules.Contains);
        try
        {
            var byKey = file.Entries.Keys.ToDictionary(Normalise, k => k);
            adapters.Load(k => byKey.TryGetValue(k, out var raw) ? file.Read(raw) : null, weightsPath);
            return adapters;
        }
        catch
        {
            adapters.Dispose();
            throw;
        }
    }

    /// <summary>
    /// PEFT's saved key for <paramref name="key"/>: keys with the adapter name left in (<c>lora_A.default.weight</c>, as in
    /// state dicts saved by hand) or without the <c>base_model.model.</c> prefix read like saved ones.
    /// </summary>
    static string Normalise(string key)
    {
        string k = key.Replace(".lora_A.default.weight", ".lora_A.weight").Replace(".lora_B.default.weight", ".lora_B.weight");
        return k.StartsWith(LoraAdapters.PeftPrefix, StringComparison.Ordinal) ? k : LoraAdapters.PeftPrefix + k;
    }

    public static LoraSettings ReadConfig(string path)
    {
        JsonObject json;
        try { json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new EngineException($"{path}: not a JSON object"); }
        catch (JsonException e) { throw new EngineException($"{path}: invalid JSON ({e.Message})"); }
        string? peftType = json["peft_type"]?.GetValue<string>();
        if (peftType != "LORA") throw new EngineException($"{path}: peft_type {peftType ?? "(missing)"} is not supported (only LORA)");
        if (json["use_dora"]?.GetValue<bool>() == true) throw new EngineException($"{path}: DoRA adapters (use_dora) are not supported");
        if (json["bias"]?.GetValue<string>() is string bias && bias != "none") throw new EngineException($"{path}: bias \"{bias}\" is not supported (only \"none\")");
        if (json["fan_in_fan_out"]?.GetValue<bool>() == true) throw new EngineException($"{path}: fan_in_fan_out adapters (Conv1D bases) are not supported");
        foreach (var pattern in new[] { "rank_pattern", "alpha_pattern" })
            if (json[pattern] is JsonObject o && o.Count > 0) throw new EngineException($"{path}: a non-empty {pattern} is not supported");
        if (json["modules_to_save"] is JsonArray saved && saved.Count > 0)
            throw new EngineException($"{path}: modules_to_save ({string.Join(", ", saved)}) is not supported");
        int r = json["r"]?.GetValue<int>() ?? throw new EngineException($"{path}: no r");
        double alpha = json["lora_alpha"]?.GetValue<double>() ?? 8; // LoraConfig's default
        double dropout = json["lora_dropout"]?.GetValue<double>() ?? 0;
        return new LoraSettings
        {
            Enabled = true, Rank = r, Alpha = alpha, Dropout = dropout,
            UseRslora = json["use_rslora"]?.GetValue<bool>() ?? false,
            TargetModules = new[] { LoraSettings.AllLinear },
        };
    }
}

/// <summary>A base model with a PEFT adapter folder attached (generate, eval, export --adapter).</summary>
public sealed class AdaptedModel : IDisposable
{
    public LoadedModel Base { get; }
    /// <summary>Null when no adapter was asked for.</summary>
    public LoraAdapters? Adapters { get; }

    AdaptedModel(LoadedModel model, LoraAdapters? adapters) { Base = model; Adapters = adapters; }

    public LlamaForCausalLM Model => Base.Model;

    /// <summary>Loads <paramref name="model"/> in fp32, attaches <paramref name="adapter"/> (if any), then casts both to <paramref name="dtype"/>.</summary>
    public static AdaptedModel Load(string model, string? adapter, ScalarType dtype, bool requireTokenizer)
    {
        if (adapter is null) return new AdaptedModel(ModelLoader.Load(model, dtype, requireTokenizer), null);
        var loaded = ModelLoader.Load(model, ScalarType.Float32, requireTokenizer);
        try
        {
            var adapters = PeftAdapterFolder.Load(loaded.Model, adapter);
            loaded.Model.ConvertTo(dtype);
            adapters.ConvertTo(dtype);
            loaded.Model.eval();
            return new AdaptedModel(loaded, adapters);
        }
        catch
        {
            loaded.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Adapters?.Dispose();
        Base.Dispose();
    }
}
