namespace Engine.Gguf;

/// <summary>The ggml type chosen for one tensor, and why it differs from the file's base type.</summary>
public sealed record TensorTypeChoice(string Name, long[] Dims, GgmlType Type, string? Note)
{
    public bool IsFallback { get; init; }
}

/// <summary>
/// Chooses each tensor's type the way llama.cpp's quantizer does (llama-quant.cpp): norms and 1-D tensors
/// stay F32; the output matrix (or the token embedding when it doubles as output) gets Q6_K in quantized
/// files unless the file is Q8_0; Q4_K_M bumps attn_v and ffn_down of selected layers to Q6_K; and a tensor
/// whose row length is not a multiple of the block size falls back (Q4_K → Q5_0, Q6_K → Q8_0, then F16).
/// </summary>
public static class TensorTypePlan
{
    public static TensorTypeChoice Choose(GgufExportType fileType, string name, long[] dims, int layerCount, bool hasOutputTensor)
    {
        bool quantizable = dims.Length >= 2 && name.EndsWith("weight", StringComparison.Ordinal) && !name.Contains("_norm.weight");
        if (!quantizable) return new TensorTypeChoice(name, dims, GgmlType.F32, null);
        var baseType = GgufExportTypes.BaseType(fileType);
        if (!GgmlTypes.IsQuantized(baseType)) return new TensorTypeChoice(name, dims, baseType, null);

        var type = baseType;
        string? note = null;
        bool isOutput = name == "output.weight" || (!hasOutputTensor && name == "token_embd.weight");
        if (isOutput)
        {
            if (dims[0] % GgmlTypes.BlockSize(baseType) != 0) type = GgmlType.Q8_0;
            else if (baseType != GgmlType.Q8_0) type = GgmlType.Q6_K;
            if (type != baseType) note = "output matrix: " + GgmlTypes.Name(type);
        }
        else if (fileType == GgufExportType.Q4_K_M && GgufArchitecture.LayerOf(name) is int layer
            && (name.EndsWith(".attn_v.weight", StringComparison.Ordinal) || name.EndsWith(".ffn_down.weight", StringComparison.Ordinal))
            && UseMoreBits(layer, layerCount))
        {
            type = GgmlType.Q6_K;
            note = "q4_k_m mix: " + GgmlTypes.Name(type);
        }

        if (GgmlTypes.FitsRow(type, dims[0])) return new TensorTypeChoice(name, dims, type, note);
        var wanted = type;
        type = type switch
        {
            GgmlType.Q4_K => GgmlType.Q5_0,
            GgmlType.Q6_K => GgmlType.Q8_0,
            _ => type,
        };
        if (!GgmlTypes.FitsRow(type, dims[0])) type = GgmlType.F16;
        return new TensorTypeChoice(name, dims, type,
            $"row length {dims[0]} is not a multiple of {GgmlTypes.BlockSize(wanted)} ({GgmlTypes.Name(wanted)}): fallback to {GgmlTypes.Name(type)}")
        { IsFallback = true };
    }

    /// <summary>llama.cpp's use_more_bits: the first and last eighth of layers, and every third one between.</summary>
    public static bool UseMoreBits(int layer, int layerCount) =>
        layer < layerCount / 8 || layer >= 7 * layerCount / 8 || (layer - layerCount / 8) % 3 == 2;
}
