using System.Runtime.InteropServices;

namespace Engine.Memory;

/// <summary>
/// Bytes in use in the process's C heap, from glibc's <c>mallinfo2</c>: small-chunk bytes in use in every arena
/// (<c>uordblks</c>) plus bytes in mmap'ed chunks (<c>hblkhd</c>). libtorch's CPU allocator takes tensor memory
/// straight from malloc and gives it back on free (no caching allocator on the CPU), so this counts live tensors
/// to within chunk headers; freed memory that glibc keeps for reuse is not counted (unlike resident memory).
/// </summary>
public static class HostAllocatorProbe
{
    [StructLayout(LayoutKind.Sequential)]
    struct MallInfo2
    {
        public nuint Arena, OrdBlks, SmBlks, HBlks, HBlkHd, UsmBlks, FsmBlks, UordBlks, FordBlks, KeepCost;
    }

    [DllImport("libc", EntryPoint = "mallinfo2")]
    static extern MallInfo2 NativeMallInfo2();

    static readonly Lazy<string?> Unavailable = new(() =>
    {
        if (!OperatingSystem.IsLinux()) return "the host allocator probe needs Linux (glibc mallinfo2)";
        try
        {
            NativeMallInfo2();
            return null;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return $"the C library has no mallinfo2 (glibc 2.33 or newer is needed): {e.Message}";
        }
    });

    public static bool IsAvailable => Unavailable.Value is null;

    /// <summary>Why the probe cannot be used, or null.</summary>
    public static string? UnavailableReason => Unavailable.Value;

    /// <summary>Bytes currently allocated through malloc (all arenas plus mmap'ed chunks).</summary>
    public static long InUseBytes()
    {
        if (Unavailable.Value is string reason) throw new EngineException(reason);
        var m = NativeMallInfo2();
        return (long)m.UordBlks + (long)m.HBlkHd;
    }

    /// <summary>
    /// Runs <paramref name="action"/> while a background thread samples <see cref="InUseBytes"/> without pause,
    /// and returns the highest value seen (also sampled right before and after). A peak shorter than one sample
    /// (a few microseconds) can be missed; the step's large buffers live for whole matmuls, far longer.
    /// </summary>
    public static long PeakDuring(Action action)
    {
        long peak = InUseBytes();
        using var stop = new ManualResetEventSlim(false);
        long sampled = peak;
        var sampler = new Thread(() =>
        {
            long local = 0;
            while (!stop.IsSet)
            {
                long v = InUseBytes();
                if (v > local) local = v;
            }
            Interlocked.Exchange(ref sampled, local);
        }) { IsBackground = true, Name = "allocator-sampler" };
        sampler.Start();
        try
        {
            action();
        }
        finally
        {
            stop.Set();
            sampler.Join();
        }
        return Math.Max(peak, Math.Max(Interlocked.Read(ref sampled), InUseBytes()));
    }
}
