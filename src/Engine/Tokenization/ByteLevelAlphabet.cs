using System.Text;

namespace Engine.Tokenization;

/// <summary>
/// GPT-2's reversible map from bytes to printable characters, used by byte-level BPE vocabularies: printable
/// Latin-1 bytes stand for themselves, the other 68 bytes (space, control, 0x7F–0xA0, 0xAD) take the characters
/// from U+0100 on in byte order, so a space is "Ġ" (U+0120) and a newline "Ċ" (U+010A).
/// </summary>
internal static class ByteLevelAlphabet
{
    static readonly char[] CharOfByte = BuildTable();
    static readonly Dictionary<char, byte> ByteOfChar = Enumerable.Range(0, 256).ToDictionary(b => CharOfByte[b], b => (byte)b);

    static char[] BuildTable()
    {
        var table = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)(256 + next++);
        }
        return table;
    }

    public static char ToChar(byte b) => CharOfByte[b];

    /// <summary>The byte-level spelling of text: its UTF-8 bytes, each as its alphabet character.</summary>
    public static string Encode(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = CharOfByte[bytes[i]];
        return new string(chars);
    }

    /// <summary>
    /// Appends the bytes a token stands for. As Hugging Face's ByteLevel decoder does, a token with a character
    /// outside the alphabet (an added token such as a CJK word) contributes its own UTF-8 bytes instead.
    /// </summary>
    public static void AppendBytes(string token, List<byte> output)
    {
        int start = output.Count;
        foreach (char c in token)
        {
            if (!ByteOfChar.TryGetValue(c, out byte b))
            {
                output.RemoveRange(start, output.Count - start);
                output.AddRange(Encoding.UTF8.GetBytes(token));
                return;
            }
            output.Add(b);
        }
    }
}
