using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Gguf;

/// <summary>
/// The tensors of a GGUF file in Hugging Face naming and layout: names mapped back, shapes outermost first, every type
/// dequantized to float32, and what the converter changed undone (llama's q/k rows returned to HF's rotate-half order,
/// Gemma 3's norms shifted back by −1). The rope_freqs tensor is part of the config, not a weight.
/// </summary>
public sealed class GgufWeightSource : IWeightSource
{
    readonly GgufFile _file;
    readonly LlamaConfig _config;
    readonly GgufArchitecture _arch;
    readonly Dictionary<string, GgufTensorInfo> _byHfName = new(StringComparer.Ordinal);

    public string Description => _file.Source;
    public IReadOnlyCollection<string> Names => _byHfName.Keys;

    /// <summary>Takes ownership of <paramref name="file"/>.</summary>
    public GgufWeightSource(GgufFile file, LlamaConfig config, GgufArchitecture arch)
    {
        _file = file;
        _config = config;
        _arch = arch;
        foreach (var t in file.Tensors)
        {
            if (t.Name == GgufArchitecture.RopeFrequencies) continue;
            string hf = arch.ToHf(t.Name)
                ?? throw new EngineException($"{file.Source}: tensor '{t.Name}' is not part of the supported {arch.Name} architecture");
            if (GgufArchitecture.LayerOf(t.Name) is int layer && layer >= config.NumLayers)
                throw new EngineException($"{file.Source}: tensor '{t.Name}' belongs to layer {layer} but {GgufKeys.BlockCount.Name(arch.Name)} is {config.NumLayers}");
            _byHfName[hf] = t;
        }
    }

    GgufTensorInfo Info(string hfName) =>
        _byHfName.TryGetValue(hfName, out var t) ? t : throw new EngineException($"{_file.Source}: no tensor for '{hfName}'");

    public long[] Shape(string name) => Info(name).TorchShape;

    /// <summary>The stored ggml type of a tensor (for `info`).</summary>
    public GgmlType TypeOf(string name) => Info(name).Type;

    public unsafe Tensor Read(string name)
    {
        var info = Info(name);
        using var scope = NewDisposeScope();
        var values = empty(info.TorchShape, ScalarType.Float32);
        _file.DecodeInto(info, (float*)TensorMemory.DataPointer(values));
        if (_arch.InterleaveHeads(info.Name, _config) is int heads)
            values = RopePermutation.ToRotateHalf(values, heads);
        if (_arch.NormShift != 0 && GgufArchitecture.IsNorm(name)) values = values - _arch.NormShift;
        return values.MoveToOuterDisposeScope();
    }

    public void Dispose() => _file.Dispose();
}
