namespace Engine.Memory;

/// <summary>
/// Peak resident memory of this process from /proc (Linux): VmHWM after resetting it with clear_refs, so the extra
/// bytes an operation touches are measured, not estimated. Buffers this large are mmap'ed by glibc and returned on
/// free, so earlier runs do not hide allocations.
/// </summary>
public static class ProcessMemory
{
    public static bool PeakTrackingAvailable { get; } = File.Exists("/proc/self/clear_refs") && TryReset();

    static bool TryReset()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    static long StatusKb(string field)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0]);
        throw new InvalidOperationException($"/proc/self/status has no {field}");
    }

    /// <summary>MemAvailable from /proc/meminfo, in bytes (long.MaxValue when unknown).</summary>
    public static long AvailableBytes()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                    return long.Parse(line["MemAvailable:".Length..].Trim().Split(' ')[0]) * 1024;
        }
        catch (IOException) { }
        return long.MaxValue;
    }

    /// <summary>How far resident memory rose above its level at the start while <paramref name="action"/> ran, in bytes.</summary>
    public static long PeakIncrease(Action action)
    {
        if (!PeakTrackingAvailable) throw new InvalidOperationException("peak memory tracking needs Linux /proc/self/clear_refs");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        File.WriteAllText("/proc/self/clear_refs", "5"); // VmHWM := VmRSS
        long baseline = StatusKb("VmRSS");
        action();
        return (StatusKb("VmHWM") - baseline) * 1024;
    }
}
