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

    public void Dispose()
    {
        if (Pointer == null) return;
        NativeMemory.Free(Pointer);
        Pointer = null;
    }
}
