using static TorchSharp.torch;

namespace Engine.Models;

/// <summary>
/// Preallocated keys and values for incremental decoding: [B, kvHeads, slots, headDim] per layer. Full-attention layers
/// keep every position (slots = capacity); sliding-window layers keep only their window in a ring (slots = window,
/// position p in slot p mod window), so a Gemma 3 cache grows with the context only in its global layers. Each new token
/// costs one write and attention over the kept keys; nothing is re-concatenated while decoding token by token.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly Tensor[] _keys, _values;
    readonly bool[] _ring;
    readonly int _ringSize;
    /// <summary>The cache position each ring slot holds (−1: empty), shared by all ring layers.</summary>
    readonly Tensor? _slotPositions;
    public int Capacity { get; }
    /// <summary>Positions already filled (the "past" of the next forward).</summary>
    public int Length { get; private set; }
    /// <summary>Which cached positions hold real tokens (false for left padding): [B, capacity].</summary>
    public Tensor KeyMask { get; }

    public KvCache(LlamaConfig c, int batch, int capacity, ScalarType dtype, Device? device = null)
    {
        Capacity = capacity;
        _ringSize = c.SlidingWindow is int w && w < capacity ? w : 0;
        _keys = new Tensor[c.NumLayers];
        _values = new Tensor[c.NumLayers];
        _ring = new bool[c.NumLayers];
        for (int i = 0; i < c.NumLayers; i++)
        {
            _ring[i] = _ringSize > 0 && c.AttentionOf(i) == LayerAttention.Sliding;
            long slots = _ring[i] ? _ringSize : capacity;
            _keys[i] = torch.zeros(new long[] { batch, c.NumKvHeads, slots, c.HeadDim }, dtype: dtype, device: device);
            _values[i] = torch.zeros(new long[] { batch, c.NumKvHeads, slots, c.HeadDim }, dtype: dtype, device: device);
        }
        if (_ringSize > 0) _slotPositions = torch.full(_ringSize, -1L, dtype: ScalarType.Int64, device: device);
        KeyMask = torch.zeros(new long[] { batch, capacity }, dtype: ScalarType.Bool, device: device);
    }

    /// <summary>The key slots a layer keeps: its window for ring layers, else the capacity.</summary>
    public long SlotsOf(int layer) => _keys[layer].shape[2];

    /// <summary>
    /// Stores this step's keys/values and returns the keys/values to attend over, in the order
    /// <see cref="RingKeyPositions"/> describes: the filled prefix for full layers; for ring layers the ring (one new token,
    /// written first) or the ring as it was followed by the new tokens (several, whose earliest queries still need
    /// keys the new ones will overwrite), of which the last window are then kept.
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.shape[2];
        if (Length + t > Capacity) throw new InvalidOperationException($"KV cache capacity {Capacity} exceeded");
        if (!_ring[layer])
        {
            using (var ks = _keys[layer].narrow(2, Length, t)) ks.copy_(k);
            using (var vs = _values[layer].narrow(2, Length, t)) vs.copy_(v);
            return (_keys[layer].narrow(2, 0, Length + t), _values[layer].narrow(2, 0, Length + t));
        }
        if (t == 1)
        {
            int slot = Length % _ringSize;
            using (var ks = _keys[layer].narrow(2, slot, 1)) ks.copy_(k);
            using (var vs = _values[layer].narrow(2, slot, 1)) vs.copy_(v);
            return (_keys[layer].alias(), _values[layer].alias());
        }
        var keys = Length > 0 ? torch.cat(new[] { _keys[layer], k }, 2) : k.alias();
        var values = Length > 0 ? torch.cat(new[] { _values[layer], v }, 2) : v.alias();
        long kept = Math.Min(t, _ringSize);
        using var slots = RingSlots(Length + t - kept, kept);
        using (var tailK = k.narrow(2, t - kept, kept)) _keys[layer].index_copy_(2, slots, tailK);
        using (var tailV = v.narrow(2, t - kept, kept)) _values[layer].index_copy_(2, slots, tailV);
        return (keys, values);
    }

    /// <summary>
    /// For layers of a kind kept in the ring: the cache position of each key they attend over in a forward of
    /// <paramref name="t"/> new tokens (−1 for an empty slot), in <see cref="Append"/>'s order; null for layers that keep
    /// every position (their keys are positions 0 … Length + t − 1 in order). Call before the forward's appends.
    /// </summary>
    public Tensor? RingKeyPositions(LayerAttention kind, long t)
    {
        var device = KeyMask.device;
        if (kind == LayerAttention.Full || _slotPositions is null) return null;
        if (t == 1)
        {
            var after = _slotPositions.clone();
            after[Length % _ringSize] = torch.tensor((long)Length);
            return after;
        }
        var fresh = torch.arange(Length, Length + t, dtype: ScalarType.Int64, device: device);
        return Length > 0 ? torch.cat(new[] { _slotPositions, fresh }) : fresh;
    }

    Tensor RingSlots(long firstPosition, long count) =>
        torch.arange(firstPosition, firstPosition + count, dtype: ScalarType.Int64, device: KeyMask.device).remainder(_ringSize);

    internal void MarkKeys(Tensor validMask)
    {
        using var slot = KeyMask.narrow(1, Length, validMask.shape[1]);
        slot.copy_(validMask);
    }

    internal void Advance(int tokens)
    {
        if (_slotPositions is not null)
        {
            long kept = Math.Min(tokens, _ringSize);
            using var slots = RingSlots(Length + tokens - kept, kept);
            using var positions = torch.arange(Length + tokens - kept, Length + tokens, dtype: ScalarType.Int64, device: KeyMask.device);
            _slotPositions.index_copy_(0, slots, positions);
        }
        Length += tokens;
    }

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
        _slotPositions?.Dispose();
        KeyMask.Dispose();
    }
}
