using System.Buffers.Binary;
using System.Text;

namespace Engine.Tests.Training;

/// <summary>One scalar of a TensorBoard event file.</summary>
public sealed record TfScalar(string Tag, long Step, float Value);

/// <summary>One Event record: its wall time and step, the file version (first record), and its summary's scalars.</summary>
public sealed record TfEvent(double WallTime, long Step, string? FileVersion, IReadOnlyList<TfScalar> Scalars);

/// <summary>
/// A test-only reader of TensorBoard event files, written from the format descriptions and independent of any
/// writer: TFRecord framing (u64 length, masked CRC-32C of the length, data, masked CRC-32C of the data, little
/// endian) and the protobuf wire format of tensorflow.Event (wall_time 1, step 2, file_version 3, summary 5),
/// Summary (value 1) and Summary.Value (tag 1, simple_value 2). Any CRC mismatch throws.
/// </summary>
public static class TfEventReader
{
    /// <param name="allowTruncatedTail">a file still being written: stop at a record whose bytes are not all there yet</param>
    public static List<TfEvent> Read(string path, bool allowTruncatedTail = false)
    {
        byte[] bytes;
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        using (var m = new MemoryStream()) { f.CopyTo(m); bytes = m.ToArray(); }
        var events = new List<TfEvent>();
        int pos = 0;
        while (pos < bytes.Length)
        {
            if (bytes.Length - pos < 12) { if (allowTruncatedTail) break; throw new InvalidDataException($"{path}: truncated record header at byte {pos}"); }
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(pos, 8));
            uint lengthCrc = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos + 8, 4));
            if (MaskedCrc32C(bytes.AsSpan(pos, 8)) != lengthCrc) throw new InvalidDataException($"{path}: length CRC mismatch at byte {pos}");
            if ((ulong)(bytes.Length - pos - 12) < length + 4) { if (allowTruncatedTail) break; throw new InvalidDataException($"{path}: truncated record at byte {pos}"); }
            var data = bytes.AsSpan(pos + 12, (int)length);
            uint dataCrc = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(pos + 12 + (int)length, 4));
            if (MaskedCrc32C(data) != dataCrc) throw new InvalidDataException($"{path}: data CRC mismatch at byte {pos}");
            events.Add(ParseEvent(data));
            pos += 16 + (int)length;
        }
        return events;
    }

    /// <summary>CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int i = 0; i < 8; i++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78 : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>TFRecord's mask: rotate right by 15 bits and add a constant.</summary>
    public static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return unchecked(((crc >> 15) | (crc << 17)) + 0xA282EAD8);
    }

    static TfEvent ParseEvent(ReadOnlySpan<byte> data)
    {
        double wall = 0;
        long step = 0;
        string? version = null;
        var values = new List<(string Tag, float Value)>();
        var r = new Wire(data.ToArray());
        while (!r.End)
        {
            var (field, type) = r.Key();
            switch (field, type)
            {
                case (1, 1): wall = BitConverter.Int64BitsToDouble((long)r.Fixed64()); break;
                case (2, 0): step = (long)r.Varint(); break;
                case (3, 2): version = Encoding.UTF8.GetString(r.Bytes()); break;
                case (5, 2): values.AddRange(ParseSummary(r.Bytes())); break;
                default: r.Skip(type); break;
            }
        }
        return new TfEvent(wall, step, version, values.Select(v => new TfScalar(v.Tag, step, v.Value)).ToList());
    }

    static IEnumerable<(string, float)> ParseSummary(byte[] data)
    {
        var r = new Wire(data);
        var values = new List<(string, float)>();
        while (!r.End)
        {
            var (field, type) = r.Key();
            if (field == 1 && type == 2)
            {
                var v = new Wire(r.Bytes());
                string tag = "";
                float? simple = null;
                while (!v.End)
                {
                    var (f, t) = v.Key();
                    if (f == 1 && t == 2) tag = Encoding.UTF8.GetString(v.Bytes());
                    else if (f == 2 && t == 5) simple = BitConverter.Int32BitsToSingle((int)v.Fixed32());
                    else v.Skip(t);
                }
                if (simple is float s) values.Add((tag, s));
            }
            else r.Skip(type);
        }
        return values;
    }

    /// <summary>Protobuf wire-format reading: varints, fixed 32/64-bit values, length-delimited bytes.</summary>
    sealed class Wire
    {
        readonly byte[] _b;
        int _p;
        public Wire(byte[] b) { _b = b; }
        public bool End => _p >= _b.Length;

        public ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; ; shift += 7)
            {
                if (shift > 63) throw new InvalidDataException("varint too long");
                byte b = _b[_p++];
                v |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return v;
            }
        }

        public (int Field, int Type) Key()
        {
            ulong k = Varint();
            return ((int)(k >> 3), (int)(k & 7));
        }

        public ulong Fixed64() { ulong v = BinaryPrimitives.ReadUInt64LittleEndian(_b.AsSpan(_p, 8)); _p += 8; return v; }
        public uint Fixed32() { uint v = BinaryPrimitives.ReadUInt32LittleEndian(_b.AsSpan(_p, 4)); _p += 4; return v; }

        public byte[] Bytes()
        {
            int n = checked((int)Varint());
            var v = _b.AsSpan(_p, n).ToArray();
            _p += n;
            return v;
        }

        public void Skip(int type)
        {
            switch (type)
            {
                case 0: Varint(); break;
                case 1: _p += 8; break;
                case 2: Bytes(); break;
                case 5: _p += 4; break;
                default: throw new InvalidDataException($"unsupported wire type {type}");
            }
        }
    }
}
