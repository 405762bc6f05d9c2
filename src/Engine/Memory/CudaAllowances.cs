namespace Engine.Memory;

/// <summary>
/// Memory a CUDA run needs beyond the tensors themselves. Estimates, not measurements (there is no GPU where
/// Engine is developed); they are zero on the CPU, where libtorch allocates straight from malloc.
/// </summary>
public static class CudaAllowances
{
    /// <summary>
    /// The CUDA context on the device: driver state plus libtorch's kernel images, loaded lazily since CUDA 11.7
    /// (CUDA_MODULE_LOADING=LAZY). PyTorch users report 300–500 MB of "used" memory before the first tensor on
    /// current drivers; we take the upper half of that range.
    /// </summary>
    public const long ContextBytes = 450L << 20;

    /// <summary>
    /// cuBLAS/cuBLASLt workspaces: PyTorch's default CUBLAS_WORKSPACE_CONFIG is ":4096:8" (8 × 4 MiB) per handle and
    /// stream; one handle and stream here.
    /// </summary>
    public const long CublasWorkspaceBytes = 32L << 20;

    /// <summary>
    /// The caching allocator's fragmentation, as a fraction of the step's dynamic bytes (activations and
    /// transients). Blocks are rounded to 512 B and carved out of 2 MiB (small) or 20 MiB+ (large) segments that
    /// are not returned between steps; reserved-minus-allocated gaps of 5–15% are typical in PyTorch's memory
    /// snapshots for training loops whose tensor sizes repeat step after step, as they do here. We use 10%.
    /// </summary>
    public const double FragmentationFraction = 0.10;
}
