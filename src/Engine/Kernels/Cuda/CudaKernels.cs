using System.Collections.Concurrent;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels.Cuda;

/// <summary>
/// Launches native/cuda/*.cu on the device memory of TorchSharp CUDA tensors through <see cref="CudaDriver"/>.
/// Chosen automatically by <see cref="LogProbKernels"/> and <see cref="KlReduction"/> for CUDA tensors.
/// </summary>
internal static unsafe class CudaKernels
{
    const uint LogProbThreads = 256;        // TLP_THREADS in token_logprob.cu
    const uint BackwardItemsPerThread = 8;  // TLP_BACKWARD_ITEMS
    const uint KlThreads = 256;             // KL_THREADS in kl_reduction.cu

    sealed record DeviceFunctions(IntPtr Context, IntPtr ForwardF32, IntPtr ForwardBf16, IntPtr BackwardF32, IntPtr BackwardBf16, IntPtr KlZ0);

    static readonly ConcurrentDictionary<int, DeviceFunctions> Devices = new();

    static DeviceFunctions For(Tensor t)
    {
        if (!CudaDriver.IsAvailable) throw new EngineException(CudaDriver.UnavailableReason!);
        int index = t.device_index < 0 ? 0 : t.device_index;
        return Devices.GetOrAdd(index, i =>
        {
            IntPtr context = CudaDriver.PrimaryContext(i);
            var (major, minor) = CudaDriver.ComputeCapability(i);
            using var scope = CudaDriver.Enter(context);
            IntPtr logprob = CudaDriver.LoadModule(KernelCompiler.ImageForDevice(KernelSources.TokenLogProb, major, minor));
            IntPtr kl = CudaDriver.LoadModule(KernelCompiler.ImageForDevice(KernelSources.KlReduction, major, minor));
            return new DeviceFunctions(context,
                CudaDriver.GetFunction(logprob, "token_logprob_forward_f32"),
                CudaDriver.GetFunction(logprob, "token_logprob_forward_bf16"),
                CudaDriver.GetFunction(logprob, "token_logprob_backward_f32"),
                CudaDriver.GetFunction(logprob, "token_logprob_backward_bf16"),
                CudaDriver.GetFunction(kl, "kl_z0_reduce"));
        });
    }

    static (int Rows, int Vocab) Shape(Tensor logits)
    {
        long rows = logits.shape[0], vocab = logits.shape[1];
        if (rows > int.MaxValue || vocab > int.MaxValue) throw new EngineException($"logits of shape [{rows}, {vocab}] are too large for the CUDA kernels");
        return ((int)rows, (int)vocab);
    }

    public static void Forward(Tensor logits, Tensor labels, Tensor logp, Tensor stats, Tensor means)
    {
        var (rows, vocab) = Shape(logits);
        if (rows == 0) return;
        LogProbKernels.ValidateLabelsWithTorch(labels, vocab);
        var f = For(logits);
        IntPtr pLogits = TensorMemory.DataPointer(logits), pLabels = TensorMemory.DataPointer(labels);
        IntPtr pLogp = TensorMemory.DataPointer(logp), pStats = TensorMemory.DataPointer(stats), pMeans = TensorMemory.DataPointer(means);
        long ignore = TokenLogProbs.IgnoreIndex;
        void** args = stackalloc void*[] { &pLogits, &pLabels, &rows, &vocab, &ignore, &pLogp, &pStats, &pMeans };
        bool bf16 = logits.dtype == ScalarType.BFloat16;
        using var scope = CudaDriver.Enter(f.Context);
        CudaDriver.LaunchAndSynchronize(bf16 ? f.ForwardBf16 : f.ForwardF32, ((uint)rows, 1), LogProbThreads, args,
            bf16 ? "token_logprob_forward_bf16" : "token_logprob_forward_f32");
    }

    public static void Backward(Tensor logits, Tensor labels, Tensor stats, Tensor gradOut, Tensor grad)
    {
        var (rows, vocab) = Shape(logits);
        if (rows == 0) return;
        var f = For(logits);
        IntPtr pLogits = TensorMemory.DataPointer(logits), pLabels = TensorMemory.DataPointer(labels), pStats = TensorMemory.DataPointer(stats);
        IntPtr pGradOut = TensorMemory.DataPointer(gradOut), pGrad = TensorMemory.DataPointer(grad);
        long ignore = TokenLogProbs.IgnoreIndex;
        void** args = stackalloc void*[] { &pLogits, &pLabels, &pStats, &pGradOut, &rows, &vocab, &ignore, &pGrad };
        uint tile = LogProbThreads * BackwardItemsPerThread;
        uint tiles = (uint)((vocab + tile - 1) / tile);
        bool bf16 = logits.dtype == ScalarType.BFloat16;
        using var scope = CudaDriver.Enter(f.Context);
        CudaDriver.LaunchAndSynchronize(bf16 ? f.BackwardBf16 : f.BackwardF32, ((uint)rows, tiles), LogProbThreads, args,
            bf16 ? "token_logprob_backward_bf16" : "token_logprob_backward_f32");
    }

    /// <summary>z0 in one launch; referenceTokens or referenceSums is undefined (IntPtr.Zero is passed for it).</summary>
    public static (double MeanRaw, double Z0) KlZ0(Tensor policy, Tensor? referenceTokens, Tensor? referenceSums, Tensor mask,
                                                   Tensor policySums, Tensor referenceSumsOut)
    {
        int batch = (int)policy.shape[0], tokens = (int)policy.shape[1];
        var f = For(policy);
        using var scratch = empty(new long[] { batch }, ScalarType.Float64, policy.device);
        using var stats = empty(new long[] { 2 }, ScalarType.Float64, policy.device);
        IntPtr pPolicy = TensorMemory.DataPointer(policy), pMask = TensorMemory.DataPointer(mask);
        IntPtr pRefTokens = referenceTokens is null ? IntPtr.Zero : TensorMemory.DataPointer(referenceTokens);
        IntPtr pRefSums = referenceSums is null ? IntPtr.Zero : TensorMemory.DataPointer(referenceSums);
        IntPtr pPolicySums = TensorMemory.DataPointer(policySums), pRefSumsOut = TensorMemory.DataPointer(referenceSumsOut);
        IntPtr pScratch = TensorMemory.DataPointer(scratch), pStatsOut = TensorMemory.DataPointer(stats);
        void** args = stackalloc void*[] { &pPolicy, &pRefTokens, &pRefSums, &pMask, &batch, &tokens, &pPolicySums, &pRefSumsOut, &pScratch, &pStatsOut };
        using (CudaDriver.Enter(f.Context))
            CudaDriver.LaunchAndSynchronize(f.KlZ0, (1, 1), KlThreads, args, "kl_z0_reduce");
        using var host = stats.cpu();
        var values = host.data<double>().ToArray();
        return (values[0], values[1]);
    }
}
