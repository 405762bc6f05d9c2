using Engine.Kernels.Cuda;

namespace Engine.Memory;

/// <summary>
/// Device memory in use on a CUDA GPU, from the driver (cuMemGetInfo through Engine's CUDA driver binding):
/// total − free, which counts the context and everything the caching allocator has reserved. Without a driver
/// it reports why instead of failing later.
/// </summary>
public static class GpuMemoryProbe
{
    public static bool IsAvailable => CudaDriver.IsAvailable;

    public static string? UnavailableReason => CudaDriver.UnavailableReason;

    /// <summary>Bytes in use on the device (all processes), and the device's total.</summary>
    public static (long Used, long Total) Usage(int device = 0)
    {
        if (!CudaDriver.IsAvailable) throw new EngineException("measuring GPU memory: " + CudaDriver.UnavailableReason);
        var (free, total) = CudaDriver.MemoryInfo(device);
        return (total - free, total);
    }
}
