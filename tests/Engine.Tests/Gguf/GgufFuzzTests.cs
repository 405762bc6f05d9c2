using System.Buffers.Binary;
using Engine.Gguf;
using Engine.Models;
using Xunit.Abstractions;

namespace Engine.Tests.Gguf;

/// <summary>
/// Thousands of mutated GGUF files through the reader and importer. Every case must end in success or an
/// EngineException (never another exception), without allocating more than a small multiple of the file size.
/// </summary>
public class GgufFuzzTests
{
    readonly ITestOutputHelper _output;
    public GgufFuzzTests(ITestOutputHelper output) => _output = output;

    static readonly byte[] Base = TinyGguf.Build();

    /// <summary>Where the header's fields lie in <see cref="Base"/>, found by walking the (valid) file.</summary>
    sealed class Layout
    {
        public readonly List<(int Offset, int Size, string What)> Fields = new();
        public readonly List<(int NameLength, int NDims, int[] Dims, int Type, int Offset)> Tensors = new();
        public int HeaderEnd;
    }

    static Layout Walk(byte[] b)
    {
        var l = new Layout();
        int p = 4;
        void Field(int size, string what) { l.Fields.Add((p, size, what)); p += size; }
        Field(4, "version");
        ulong tensors = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(p)); Field(8, "tensor count");
        ulong kvs = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(p)); Field(8, "kv count");
        int Str(string what) { int len = (int)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(p)); Field(8, what + " length"); p += len; return len; }
        void Value(uint type, string what)
        {
            switch (type)
            {
                case 0 or 1 or 7: p += 1; break;
                case 2 or 3: p += 2; break;
                case 4 or 5 or 6: p += 4; break;
                case 10 or 11 or 12: p += 8; break;
                case 8: Str(what); break;
                case 9:
                    uint et = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(p)); Field(4, what + " element type");
                    ulong n = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(p)); Field(8, what + " array length");
                    for (ulong i = 0; i < n; i++) Value(et, what + " item");
                    break;
            }
        }
        for (ulong i = 0; i < kvs; i++)
        {
            Str("key");
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(p)); Field(4, "value type");
            Value(type, "value");
        }
        for (ulong i = 0; i < tensors; i++)
        {
            int nameLenAt = p;
            Str("tensor name");
            int nDimsAt = p;
            uint nd = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(p)); Field(4, "n_dims");
            var dims = new int[nd];
            for (int d = 0; d < nd; d++) { dims[d] = p; Field(8, "dim"); }
            int typeAt = p; Field(4, "ggml type");
            int offAt = p; Field(8, "tensor offset");
            l.Tensors.Add((nameLenAt, nDimsAt, dims, typeAt, offAt));
        }
        l.HeaderEnd = p;
        return l;
    }

    int _successes, _rejections, _builds;

    /// <summary>Runs one mutated file through everything an import does; fails on any non-EngineException.</summary>
    void Exercise(byte[] data, string description)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            using var file = GgufFile.FromBytes(data, "fuzz.gguf");
            var parts = GgufModelImporter.FromFile(file);
            using var weights = parts.Weights;
            foreach (var name in weights.Names)
            {
                using var t = weights.Read(name);
            }
            parts.Tokenizer?.Encode("abc a bc");
            if (_successes % 64 == 0)
            {
                using var model = ModelLoader.Build(parts.Config, weights, TorchSharp.torch.ScalarType.Float32);
                _builds++;
            }
            _successes++;
        }
        catch (EngineException)
        {
            _rejections++;
        }
        catch (Exception e)
        {
            Assert.Fail($"{description}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        // Parsing copies strings and arrays out of the file; nothing may grow beyond a small multiple of it.
        Assert.True(allocated < 16L * data.Length + (4 << 20), $"{description}: allocated {allocated:N0} bytes for a {data.Length:N0}-byte file");
    }

    [Fact]
    public void BaseFileImports()
    {
        Exercise(Base, "unmodified");
        Assert.Equal(1, _successes);
    }

    [Fact]
    public void Truncations()
    {
        var layout = Walk(Base);
        int cases = 0;
        for (int len = 0; len <= layout.HeaderEnd + 64; len++, cases++) Exercise(Base.AsSpan(0, len).ToArray(), $"truncated to {len}");
        var rng = new Random(1);
        for (int i = 0; i < 300; i++, cases++)
        {
            int len = rng.Next(layout.HeaderEnd, Base.Length);
            Exercise(Base.AsSpan(0, len).ToArray(), $"truncated to {len}");
        }
        _output.WriteLine($"truncations: {cases} cases, {_successes} imported, {_rejections} rejected");
        Assert.Equal(cases, _successes + _rejections);
        Assert.True(_rejections >= cases - 1, "every truncation that cuts tensor data must be rejected");
    }

    [Fact]
    public void BitFlips()
    {
        var layout = Walk(Base);
        var rng = new Random(2);
        const int cases = 10_000;
        for (int i = 0; i < cases; i++)
        {
            var data = (byte[])Base.Clone();
            int flips = rng.Next(1, 5);
            var where = new List<int>();
            for (int f = 0; f < flips; f++)
            {
                // Mostly in the header, where the structure is; some in tensor data.
                int pos = rng.NextDouble() < 0.85 ? rng.Next(layout.HeaderEnd) : rng.Next(data.Length);
                data[pos] ^= (byte)(1 << rng.Next(8));
                where.Add(pos);
            }
            Exercise(data, $"bit flips at {string.Join(",", where)}");
        }
        _output.WriteLine($"bit flips: {cases} cases, {_successes} imported, {_rejections} rejected, {_builds} models built");
        Assert.Equal(cases, _successes + _rejections);
        Assert.True(_rejections > cases / 4 && _successes > 0, "a mix of accepted and rejected files is expected");
    }

    [Fact]
    public void RandomByteRuns()
    {
        // Runs of random bytes and bytes copied from elsewhere in the file (plausible-looking but misplaced structure).
        var layout = Walk(Base);
        var rng = new Random(3);
        const int cases = 3000;
        for (int i = 0; i < cases; i++)
        {
            var data = (byte[])Base.Clone();
            int at = rng.Next(layout.HeaderEnd), length = rng.Next(1, 33);
            length = Math.Min(length, data.Length - at);
            if (rng.Next(2) == 0) rng.NextBytes(data.AsSpan(at, length));
            else Base.AsSpan(rng.Next(data.Length - length), length).CopyTo(data.AsSpan(at));
            Exercise(data, $"{length} bytes replaced at {at} (case {i})");
        }
        _output.WriteLine($"byte runs: {cases} cases, {_successes} imported, {_rejections} rejected");
        Assert.Equal(cases, _successes + _rejections);
    }

    static readonly ulong[] HostileValues =
    {
        0, 1, 3, 7, 63, 64, 65, 255, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x1_0000_0000, 1UL << 40, 1UL << 62,
        long.MaxValue, ulong.MaxValue, ulong.MaxValue - 7,
    };

    [Fact]
    public void HostileFieldValues()
    {
        var layout = Walk(Base);
        int cases = 0;
        foreach (var (offset, size, what) in layout.Fields)
            foreach (var v in HostileValues.Append((ulong)Base.Length).Append((ulong)Base.Length + 1))
            {
                var data = (byte[])Base.Clone();
                if (size == 8) BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(offset), v);
                else BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(offset), (uint)v);
                Exercise(data, $"{what} at {offset} set to {v}");
                cases++;
            }
        _output.WriteLine($"hostile field values: {cases} cases over {layout.Fields.Count} fields, {_successes} imported, {_rejections} rejected");
        Assert.Equal(cases, _successes + _rejections);
    }

    [Fact]
    public void OverlappingAndMisplacedTensors()
    {
        var layout = Walk(Base);
        int cases = 0;
        ulong OffsetOf(int t) => BinaryPrimitives.ReadUInt64LittleEndian(Base.AsSpan(layout.Tensors[t].Offset));
        for (int i = 0; i < layout.Tensors.Count; i++)
            for (int j = 0; j < layout.Tensors.Count; j++)
            {
                if (i == j) continue;
                foreach (long delta in new long[] { 0, 32 })
                {
                    var data = (byte[])Base.Clone();
                    BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(layout.Tensors[i].Offset), (ulong)((long)OffsetOf(j) + delta));
                    Exercise(data, $"tensor {i} moved to tensor {j}'s offset + {delta}");
                    cases++;
                }
            }
        _output.WriteLine($"overlaps: {cases} cases, {_successes} imported, {_rejections} rejected");
        Assert.Equal(cases, _successes + _rejections);
        Assert.True(_rejections >= layout.Tensors.Count * (layout.Tensors.Count - 1), "placing a tensor at another's offset must be rejected");
    }

    [Fact]
    public void UnknownAndMismatchedTypes()
    {
        var layout = Walk(Base);
        int cases = 0;
        uint[] types = { 3, 4, 5, 7, 9, 10, 11, 13, 15, 16, 20, 23, 24, 29, 31, 39, 40, 100, 0xFFFFFFFF, 0, 1, 2, 6, 8, 12, 14, 30 };
        foreach (var t in layout.Tensors)
            foreach (var type in types)
            {
                var data = (byte[])Base.Clone();
                BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(t.Type), type);
                Exercise(data, $"tensor type at {t.Type} set to {type}");
                cases++;
            }
        _output.WriteLine($"types: {cases} cases, {_successes} imported, {_rejections} rejected");
        Assert.Equal(cases, _successes + _rejections);
    }

    [Fact]
    public void SpecificHostileFilesGiveClearMessages()
    {
        var layout = Walk(Base);
        string Error(Action<byte[]> mutate)
        {
            var data = (byte[])Base.Clone();
            mutate(data);
            return Assert.Throws<EngineException>(() =>
            {
                using var f = GgufFile.FromBytes(data, "hostile.gguf");
                GgufModelImporter.FromFile(f).Weights.Dispose();
            }).Message;
        }
        var (nameLen, nDims, dims, type, offset) = layout.Tensors[0];
        Assert.Contains("tensor count", Error(d => BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(8), ulong.MaxValue)));
        Assert.Contains("metadata count", Error(d => BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(16), 1UL << 40)));
        Assert.Contains("string length", Error(d => BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(24), 1UL << 50)));
        Assert.Contains("dimensions", Error(d => BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(nDims), 9)));
        Assert.Contains("runs past the end", Error(d => BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(dims[1]), 1UL << 40)));
        Assert.Contains("overflows", Error(d => BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(dims[1]), long.MaxValue)));
        Assert.Contains("unsupported ggml type 3", Error(d => BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(type), 3)));
        Assert.Contains("not a multiple of the alignment", Error(d => BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(offset), 33)));
        Assert.Contains("overlap", Error(d => BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(layout.Tensors[1].Offset),
            BinaryPrimitives.ReadUInt64LittleEndian(Base.AsSpan(offset)))));
        Assert.Contains("truncated", Assert.Throws<EngineException>(() => GgufFile.FromBytes(Base.AsSpan(0, layout.HeaderEnd - 3).ToArray())).Message);
        Assert.Contains("hostile.gguf", Error(d => d[0] = (byte)'X'));
    }
}
