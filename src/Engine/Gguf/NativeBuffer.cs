using System.Runtime.InteropServices;

namespace Engine.Gguf;

/// <summary>An unmanaged byte buffer: tensors can exceed the 2 GB limit of a managed array.</summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    public byte* Pointer { get; private set; }
    public long Length { get; }

    public NativeBuffer(long length)
    {
        Length = length;
        Pointer = (byte*)NativeMemory.Alloc((nuint)Math.Max(1, length));
    }

    /// <summary>Writes the whole buffer in spans of at most 16 MiB.</summary>
    public void WriteTo(Stream stream)
    {
        const int chunk = 16 << 20;
        for (long offset = 0; offset < Length; offset += chunk)
            stream.Write(new ReadOnlySpan<byte>(Pointer + offset, (int)Math.Min(chunk, Length - offset)));
    }

    public void Dispose()
    {
        if (Pointer == null) return;
        NativeMemory.Free(Pointer);
        Pointer = null;
    }
}
