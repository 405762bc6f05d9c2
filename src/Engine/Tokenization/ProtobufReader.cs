using System.Buffers.Binary;
using System.Text;

namespace Engine.Tokenization;

/// <summary>Protobuf wire types (the low 3 bits of a field key).</summary>
internal enum WireType { Varint = 0, Fixed64 = 1, LengthDelimited = 2, StartGroup = 3, EndGroup = 4, Fixed32 = 5 }

/// <summary>
/// A minimal reader of the protobuf wire format over an in-memory buffer. Every length is checked against the
/// bytes that remain before anything is sliced or allocated, so a hostile length field fails instead of
/// allocating; errors name the source and the byte offset.
/// </summary>
internal ref struct ProtobufReader
{
    readonly ReadOnlySpan<byte> _data;
    readonly string _source;
    readonly int _baseOffset;
    int _pos;

    public ProtobufReader(ReadOnlySpan<byte> data, string source, int baseOffset = 0)
    {
        _data = data;
        _source = source;
        _baseOffset = baseOffset;
        _pos = 0;
    }

    public bool AtEnd => _pos >= _data.Length;
    public int Offset => _baseOffset + _pos;

    public EngineException Error(string what) => new($"{_source}: corrupt protobuf at byte {Offset}: {what}");

    /// <summary>Reads the next field key; returns the field number and wire type.</summary>
    public (int Field, WireType Wire) ReadKey()
    {
        int start = Offset;
        ulong key = ReadVarint();
        ulong field = key >> 3;
        if (field == 0 || field > 536_870_911) throw new EngineException($"{_source}: corrupt protobuf at byte {start}: invalid field number {field}");
        var wire = (WireType)(key & 7);
        if ((int)wire > 5) throw new EngineException($"{_source}: corrupt protobuf at byte {start}: invalid wire type {(int)wire}");
        return ((int)field, wire);
    }

    public ulong ReadVarint()
    {
        ulong result = 0;
        for (int shift = 0; shift < 70; shift += 7)
        {
            if (_pos >= _data.Length) throw Error("truncated varint (unexpected end of data)");
            byte b = _data[_pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw Error("varint longer than 10 bytes");
    }

    public float ReadFloat()
    {
        if (_data.Length - _pos < 4) throw Error("truncated float (unexpected end of data)");
        float v = BinaryPrimitives.ReadSingleLittleEndian(_data.Slice(_pos, 4));
        _pos += 4;
        return v;
    }

    /// <summary>Returns the payload of a length-delimited field and where it starts in the whole buffer.</summary>
    public ReadOnlySpan<byte> ReadLengthDelimited(out int payloadOffset)
    {
        int start = Offset;
        ulong len = ReadVarint();
        if (len > (ulong)(_data.Length - _pos))
            throw new EngineException($"{_source}: corrupt protobuf at byte {start}: length {len} runs past the end of the data ({_data.Length - _pos} bytes left; truncated file?)");
        payloadOffset = Offset;
        var slice = _data.Slice(_pos, (int)len);
        _pos += (int)len;
        return slice;
    }

    public string ReadString()
    {
        var bytes = ReadLengthDelimited(out int offset);
        try { return Strict.GetString(bytes); }
        catch (DecoderFallbackException) { throw new EngineException($"{_source}: corrupt protobuf at byte {offset}: string is not valid UTF-8"); }
    }

    public bool ReadBool() => ReadVarint() != 0;

    /// <summary>An int32 field: negative values arrive sign-extended to 64 bits.</summary>
    public int ReadInt32() => unchecked((int)(long)ReadVarint());

    public void Expect(WireType actual, WireType expected, string field)
    {
        if (actual != expected) throw Error($"field {field} has wire type {actual}, expected {expected}");
    }

    public void Skip(WireType wire)
    {
        switch (wire)
        {
            case WireType.Varint: ReadVarint(); break;
            case WireType.Fixed64: Advance(8); break;
            case WireType.Fixed32: Advance(4); break;
            case WireType.LengthDelimited: ReadLengthDelimited(out _); break;
            default: throw Error($"unsupported wire type {wire} (groups are not used by SentencePiece)");
        }
    }

    void Advance(int n)
    {
        if (_data.Length - _pos < n) throw Error("truncated field (unexpected end of data)");
        _pos += n;
    }

    static readonly UTF8Encoding Strict = new(false, throwOnInvalidBytes: true);
}
