using static TorchSharp.torch;

namespace Engine.Models;

/// <summary>
/// Preallocated keys and values for incremental decoding: [B, kvHeads, capacity, headDim] per layer.
/// Each new token costs one write and attention over the filled prefix; nothing is re-concatenated.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly Tensor[] _keys, _values;
    public int Capacity { get; }
    /// <summary>Positions already filled (the "past" of the next forward).</summary>
    public int Length { get; private set; }
    /// <summary>Which cached positions hold real tokens (false for left padding): [B, capacity].</summary>
    public Tensor KeyMask { get; }

    public KvCache(LlamaConfig c, int batch, int capacity, ScalarType dtype, Device? device = null)
    {
        Capacity = capacity;
        _keys = new Tensor[c.NumLayers];
        _values = new Tensor[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            _keys[i] = torch.zeros(new long[] { batch, c.NumKvHeads, capacity, c.HeadDim }, dtype: dtype, device: device);
            _values[i] = torch.zeros(new long[] { batch, c.NumKvHeads, capacity, c.HeadDim }, dtype: dtype, device: device);
        }
        KeyMask = torch.zeros(new long[] { batch, capacity }, dtype: ScalarType.Bool, device: device);
    }

    /// <summary>Writes this step's keys/values after the filled prefix and returns views of everything so far.</summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.shape[2];
        if (Length + t > Capacity) throw new InvalidOperationException($"KV cache capacity {Capacity} exceeded");
        using (var ks = _keys[layer].narrow(2, Length, t)) ks.copy_(k);
        using (var vs = _values[layer].narrow(2, Length, t)) vs.copy_(v);
        return (_keys[layer].narrow(2, 0, Length + t), _values[layer].narrow(2, 0, Length + t));
    }

    internal void MarkKeys(Tensor validMask)
    {
        using var slot = KeyMask.narrow(1, Length, validMask.shape[1]);
        slot.copy_(validMask);
    }

    internal void Advance(int tokens) => Length += tokens;

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
        KeyMask.Dispose();
    }
}
