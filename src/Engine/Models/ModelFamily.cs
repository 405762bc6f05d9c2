namespace Engine.Models;

/// <summary>The decoder families Engine runs. A family decides how config.json is read and written; the blocks a
/// model is built from are chosen from the config's fields (<see cref="LlamaConfig"/>), not from the family.</summary>
public enum ModelFamily { Llama, Mistral, Qwen2, Qwen3, Gemma3 }

/// <summary>One family's Hugging Face names.</summary>
/// <param name="Architecture">the <c>architectures[0]</c> entry HF writes</param>
/// <param name="ModelType">the <c>model_type</c> HF writes</param>
public sealed record FamilyNames(ModelFamily Family, string Architecture, string ModelType);

public static class ModelFamilies
{
    public static readonly IReadOnlyList<FamilyNames> All = new FamilyNames[]
    {
        new(ModelFamily.Llama, "LlamaForCausalLM", "llama"),
        new(ModelFamily.Mistral, "MistralForCausalLM", "mistral"),
        new(ModelFamily.Qwen2, "Qwen2ForCausalLM", "qwen2"),
        new(ModelFamily.Qwen3, "Qwen3ForCausalLM", "qwen3"),
        new(ModelFamily.Gemma3, "Gemma3ForCausalLM", "gemma3_text"),
    };

    public static FamilyNames Of(ModelFamily family) => All.First(f => f.Family == family);

    public static FamilyNames? ByArchitecture(string architecture) => All.FirstOrDefault(f => f.Architecture == architecture);

    public static FamilyNames? ByModelType(string modelType) => All.FirstOrDefault(f => f.ModelType == modelType);

    public static string SupportedArchitectures => string.Join(", ", All.Select(f => f.Architecture));
}
