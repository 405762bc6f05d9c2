using System.Buffers.Binary;
using System.Text;

namespace Engine.Tokenization;

/// <summary>A minimal writer of the protobuf wire format (the fields SentencePiece's model uses).</summary>
internal sealed class ProtobufWriter
{
    readonly MemoryStream _buffer = new();

    public byte[] ToArray() => _buffer.ToArray();

    void WriteKey(int field, WireType wire) => WriteVarint(((ulong)field << 3) | (ulong)wire);

    void WriteVarint(ulong value)
    {
        while (value >= 0x80)
        {
            _buffer.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _buffer.WriteByte((byte)value);
    }

    public void WriteVarintField(int field, ulong value)
    {
        WriteKey(field, WireType.Varint);
        WriteVarint(value);
    }

    /// <summary>int32 as protobuf encodes it: negative values sign-extended to 10 bytes.</summary>
    public void WriteInt32(int field, int value) => WriteVarintField(field, unchecked((ulong)(long)value));

    public void WriteBool(int field, bool value) => WriteVarintField(field, value ? 1UL : 0UL);

    public void WriteFloat(int field, float value)
    {
        WriteKey(field, WireType.Fixed32);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, value);
        _buffer.Write(b);
    }

    public void WriteBytes(int field, ReadOnlySpan<byte> bytes)
    {
        WriteKey(field, WireType.LengthDelimited);
        WriteVarint((ulong)bytes.Length);
        _buffer.Write(bytes);
    }

    public void WriteString(int field, string value) => WriteBytes(field, Encoding.UTF8.GetBytes(value));

    public void WriteMessage(int field, ProtobufWriter message) => WriteBytes(field, message.ToArray());
}
