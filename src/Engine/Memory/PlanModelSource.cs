using Engine.Models;

namespace Engine.Memory;

/// <summary>The model a plan is for: a preset name (no weights) or a model folder / GGUF file (its config).</summary>
public sealed record PlanModelSource(string Name, LlamaConfig Config, string? Path)
{
    public static PlanModelSource Resolve(string model)
    {
        if (ModelPresets.All.TryGetValue(model, out var preset)) return new PlanModelSource(model, preset, null);
        if (Directory.Exists(model) || File.Exists(model)) return new PlanModelSource(model, ModelLoader.OpenParts(model).Config, model);
        throw new EngineException($"--model: '{model}' is neither a model folder nor a preset (presets: {string.Join(", ", ModelPresets.All.Keys)})");
    }
}
