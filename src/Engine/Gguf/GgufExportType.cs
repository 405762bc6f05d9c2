namespace Engine.Gguf;

/// <summary>The file types `engine export --type` offers, named as llama.cpp's tools name them.</summary>
public enum GgufExportType { F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, Q6_K }

public static class GgufExportTypes
{
    public static readonly IReadOnlyList<string> Names = new[] { "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q6_k" };

    public static string Name(GgufExportType t) => Names[(int)t];

    public static GgufExportType Parse(string name)
    {
        int i = Names.ToList().IndexOf(name.ToLowerInvariant());
        if (i < 0) throw new EngineException($"unknown GGUF type '{name}' (supported: {string.Join(", ", Names)})");
        return (GgufExportType)i;
    }

    /// <summary>The ggml type most 2-D weights get.</summary>
    public static GgmlType BaseType(GgufExportType t) => t switch
    {
        GgufExportType.F32 => GgmlType.F32,
        GgufExportType.F16 => GgmlType.F16,
        GgufExportType.BF16 => GgmlType.BF16,
        GgufExportType.Q8_0 => GgmlType.Q8_0,
        GgufExportType.Q4_0 => GgmlType.Q4_0,
        GgufExportType.Q4_K_M => GgmlType.Q4_K,
        GgufExportType.Q6_K => GgmlType.Q6_K,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    /// <summary>llama_ftype, written as general.file_type.</summary>
    public static uint FileType(GgufExportType t) => t switch
    {
        GgufExportType.F32 => 0,
        GgufExportType.F16 => 1,
        GgufExportType.Q4_0 => 2,
        GgufExportType.Q8_0 => 7,
        GgufExportType.Q4_K_M => 15,
        GgufExportType.Q6_K => 18,
        GgufExportType.BF16 => 32,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}
