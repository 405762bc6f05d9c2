using System.Text.RegularExpressions;
using Engine.Models;

namespace Engine.Gguf;

/// <summary>
/// One llama.cpp architecture as llama.cpp's convert_hf_to_gguf.py writes it: the families exported to it, the tensor
/// names (HF per-layer suffix → GGUF suffix under <c>blk.N.</c>), and how stored tensors differ from the HF ones.
/// The table of architectures is <see cref="GgufArchitectures"/>; the metadata keys are <see cref="GgufArchitectureMetadata"/>.
/// </summary>
public sealed partial class GgufArchitecture
{
    /// <summary>general.architecture, and the prefix of the architecture's metadata keys.</summary>
    public required string Name { get; init; }
    /// <summary>The families exported to this architecture; the first is the one an imported file becomes.</summary>
    public required IReadOnlyList<ModelFamily> Families { get; init; }
    /// <summary>Per-layer tensors: HF suffix (after <c>model.layers.N.</c>) → GGUF suffix (after <c>blk.N.</c>).</summary>
    public required IReadOnlyList<(string Hf, string Gguf)> LayerTensors { get; init; }
    /// <summary>llama's RoPE rotates adjacent pairs: q/k rows (and biases) are interleaved per head on export.</summary>
    public bool InterleavesRope { get; init; }
    /// <summary>Added to every norm weight on export and subtracted on import (Gemma 3 stores 1 + w, as llama.cpp applies
    /// norm weights as plain factors).</summary>
    public double NormShift { get; init; }

    public const string RopeFrequencies = "rope_freqs.weight";

    static readonly (string Hf, string Gguf)[] Global =
    {
        (HfTensorLayout.Embedding, "token_embd.weight"),
        (HfTensorLayout.FinalNorm, "output_norm.weight"),
        (HfTensorLayout.LmHead, "output.weight"),
    };

    [GeneratedRegex(@"^blk\.(\d+)\.(.+)$")]
    private static partial Regex GgufLayer();

    public string? ToGguf(string hf)
    {
        foreach (var (h, g) in Global) if (h == hf) return g;
        if (HfTensorLayout.SplitLayer(hf) is not var (layer, suffix)) return null;
        foreach (var (h, g) in LayerTensors) if (h == suffix) return $"blk.{layer}.{g}";
        return null;
    }

    public string? ToHf(string gguf)
    {
        foreach (var (h, g) in Global) if (g == gguf) return h;
        var m = GgufLayer().Match(gguf);
        if (!m.Success || !int.TryParse(m.Groups[1].Value, out int layer)) return null;
        foreach (var (h, g) in LayerTensors) if (g == m.Groups[2].Value) return HfTensorLayout.LayerName(layer, h);
        return null;
    }

    /// <summary>The layer index of a per-layer GGUF name (blk.N.*), or null.</summary>
    public static int? LayerOf(string gguf)
    {
        var m = GgufLayer().Match(gguf);
        return m.Success && int.TryParse(m.Groups[1].Value, out int n) ? n : null;
    }

    /// <summary>Whether the stored tensor is a norm weight (shifted by <see cref="NormShift"/>).</summary>
    public static bool IsNorm(string hf) => hf.EndsWith("norm.weight", StringComparison.Ordinal);

    /// <summary>The head count that governs a q/k tensor's interleaving on this architecture, or null.</summary>
    public int? InterleaveHeads(string gguf, LlamaConfig config)
    {
        if (!InterleavesRope) return null;
        if (gguf.EndsWith(".attn_q.weight", StringComparison.Ordinal) || gguf.EndsWith(".attn_q.bias", StringComparison.Ordinal)) return config.NumHeads;
        if (gguf.EndsWith(".attn_k.weight", StringComparison.Ordinal) || gguf.EndsWith(".attn_k.bias", StringComparison.Ordinal)) return config.NumKvHeads;
        return null;
    }

    /// <summary>Checks that every HF tensor of <paramref name="config"/> has a name here (the families are kept in step).</summary>
    public void CheckCovers(LlamaConfig config, string source)
    {
        foreach (var (hf, _) in HfTensorLayout.Tensors(config))
            if (ToGguf(hf) is null)
                throw new EngineException($"{source}: tensor '{hf}' has no name in llama.cpp's {Name} architecture");
    }
}
