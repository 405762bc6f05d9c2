using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Adapters;

/// <summary>A model's weights with LoRA updates folded in (W + scaling·B·A in fp32), read one tensor at a time: the merged export.</summary>
public sealed class MergedWeightSource : IWeightSource
{
    readonly IWeightSource _base;
    readonly Dictionary<string, Tensor> _deltas;

    /// <param name="weights">the base weights (not owned)</param>
    public MergedWeightSource(IWeightSource weights, LoraAdapters adapters)
    {
        _base = weights;
        _deltas = adapters.Layers.ToDictionary(l => l.Module + ".weight", l => l.Layer.Delta());
        foreach (var name in _deltas.Keys)
            if (!weights.Names.Contains(name)) throw new EngineException($"{weights.Description}: the adapter updates {name}, which these weights do not have");
    }

    public string Description => $"{_base.Description} + LoRA";
    public IReadOnlyCollection<string> Names => _base.Names;
    public long[] Shape(string name) => _base.Shape(name);

    public Tensor Read(string name)
    {
        if (!_deltas.TryGetValue(name, out var delta)) return _base.Read(name);
        using var stored = _base.Read(name);
        using var f32 = stored.to(ScalarType.Float32);
        return f32 + delta;
    }

    public void Dispose()
    {
        foreach (var d in _deltas.Values) d.Dispose();
    }
}
