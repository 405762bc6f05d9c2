using static TorchSharp.torch;

namespace Engine.Distributed;

/// <summary>
/// A check that every rank of a data-parallel run holds bit-identical tensors (the weights at a checkpoint): each rank
/// hashes the bytes, and the hashes are compared on every rank. Replicas stay identical because every rank applies
/// the same summed gradients with the same decisions; this makes a violation an error instead of a silent drift.
/// </summary>
public static class Replicas
{
    public static void VerifyIdentical(ICommunicator ranks, IEnumerable<(string Name, Tensor Tensor)> tensors, string when)
    {
        if (ranks.Size == 1) return;
        var hash = BitConverter.GetBytes(Hash(tensors));
        var all = ranks.AllGather(hash);
        for (int r = 1; r < all.Length; r++)
            if (!all[r].AsSpan().SequenceEqual(all[0]))
                throw new EngineException($"{when}: rank {r} holds different weights from rank 0; the data-parallel replicas diverged (a bug: please report it)");
    }

    /// <summary>FNV-1a over the tensors' bytes, 8 at a time, in order.</summary>
    static unsafe ulong Hash(IEnumerable<(string Name, Tensor Tensor)> tensors)
    {
        ulong h = 14695981039346656037UL;
        foreach (var (_, t) in tensors)
        {
            using var cpu = t.device_type == DeviceType.CPU && t.is_contiguous() ? t.alias() : t.detach().cpu().contiguous();
            byte* p = (byte*)Util.TensorMemory.DataPointer(cpu);
            long n = Util.TensorMemory.ByteLength(cpu);
            long words = n / 8;
            ulong* w = (ulong*)p;
            for (long i = 0; i < words; i++) h = (h ^ w[i]) * 1099511628211UL;
            for (long i = words * 8; i < n; i++) h = (h ^ p[i]) * 1099511628211UL;
        }
        return h;
    }
}
