using System.Collections.Concurrent;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels.Cuda;

/// <summary>
/// Launches native/cuda/*.cu on the device memory of TorchSharp CUDA tensors through <see cref="CudaDriver"/>.
/// Chosen automatically by <see cref="LogProbKernels"/> and <see cref="KlReduction"/> for CUDA tensors.
/// Launches are asynchronous, on the caller's stream (<see cref="CallerStream"/>); nothing here waits for the
/// device except where a result must reach the host (z0's two numbers, the label check's verdict).
/// </summary>
internal static class CudaKernels
{
    const uint LogProbThreads = 256;        // TLP_THREADS in token_logprob.cu
    const uint BackwardItemsPerThread = 8;  // TLP_BACKWARD_ITEMS
    const uint KlThreads = 256;             // KL_THREADS in kl_reduction.cu

    internal sealed record DeviceFunctions(IntPtr Context, IntPtr ForwardF32, IntPtr ForwardBf16, IntPtr BackwardF32, IntPtr BackwardBf16, IntPtr KlZ0);

    static readonly ConcurrentDictionary<int, DeviceFunctions> Devices = new();

    /// <summary>
    /// The stream torch's work is on: TorchSharp has no stream API, so libtorch's current stream is always the
    /// device's default stream, which is handle 0 (the legacy default stream) in the driver API too. Launching
    /// there orders our kernels after the torch ops that produced the inputs and before those that read the outputs.
    /// </summary>
    internal static IntPtr CallerStream => IntPtr.Zero;

    internal static void ForgetDevices() => Devices.Clear();

    internal static DeviceFunctions For(int deviceIndex)
    {
        if (!CudaDriver.IsAvailable) throw new EngineException(CudaDriver.UnavailableReason!);
        return Devices.GetOrAdd(deviceIndex < 0 ? 0 : deviceIndex, i =>
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
        LaunchForward(logits.device_index, logits.dtype == ScalarType.BFloat16, rows, vocab, TensorMemory.DataPointer(logits),
            TensorMemory.DataPointer(labels), TensorMemory.DataPointer(logp), TensorMemory.DataPointer(stats), TensorMemory.DataPointer(means),
            CallerStream);
    }

    /// <summary>One block per row; enqueued on <paramref name="stream"/>, not waited for.</summary>
    internal static void LaunchForward(int deviceIndex, bool bf16, int rows, int vocab, IntPtr pLogits, IntPtr pLabels,
                                       IntPtr pLogp, IntPtr pStats, IntPtr pMeans, IntPtr stream)
    {
        var f = For(deviceIndex);
        using var a = new KernelArguments()
            .Pointer("logits", pLogits, KernelArguments.Element(bf16)).Pointer("labels", pLabels, "long long").Int("rows", rows)
            .Int("vocab", vocab).Long("ignore_index", TokenLogProbs.IgnoreIndex).Pointer("logp", pLogp, "float")
            .Pointer("stats", pStats, "float").Pointer("logit_mean", pMeans, "float");
        a.Launch(f.Context, bf16 ? f.ForwardBf16 : f.ForwardF32, bf16 ? "token_logprob_forward_bf16" : "token_logprob_forward_f32",
            ((uint)rows, 1), LogProbThreads, stream);
    }

    public static void Backward(Tensor logits, Tensor labels, Tensor stats, Tensor gradOut, Tensor grad)
    {
        var (rows, vocab) = Shape(logits);
        if (rows == 0) return;
        LaunchBackward(logits.device_index, logits.dtype == ScalarType.BFloat16, rows, vocab, TensorMemory.DataPointer(logits),
            TensorMemory.DataPointer(labels), TensorMemory.DataPointer(stats), TensorMemory.DataPointer(gradOut), TensorMemory.DataPointer(grad),
            CallerStream);
    }

    /// <summary>Rows × vocabulary tiles of 256 × 8 logits; enqueued on <paramref name="stream"/>, not waited for.</summary>
    internal static void LaunchBackward(int deviceIndex, bool bf16, int rows, int vocab, IntPtr pLogits, IntPtr pLabels,
                                        IntPtr pStats, IntPtr pGradOut, IntPtr pGrad, IntPtr stream)
    {
        var f = For(deviceIndex);
        string e = KernelArguments.Element(bf16);
        using var a = new KernelArguments()
            .Pointer("logits", pLogits, e).Pointer("labels", pLabels, "long long").Pointer("stats", pStats, "float")
            .Pointer("grad_out", pGradOut, "float").Int("rows", rows).Int("vocab", vocab).Long("ignore_index", TokenLogProbs.IgnoreIndex)
            .Pointer("grad", pGrad, e);
        uint tile = LogProbThreads * BackwardItemsPerThread;
        uint tiles = (uint)((vocab + tile - 1) / tile);
        a.Launch(f.Context, bf16 ? f.BackwardBf16 : f.BackwardF32, bf16 ? "token_logprob_backward_bf16" : "token_logprob_backward_f32",
            ((uint)rows, tiles), LogProbThreads, stream);
    }

    /// <summary>z0 in one launch; referenceTokens or referenceSums is undefined (IntPtr.Zero is passed for it).</summary>
    public static (double MeanRaw, double Z0) KlZ0(Tensor policy, Tensor? referenceTokens, Tensor? referenceSums, Tensor mask,
                                                   Tensor policySums, Tensor referenceSumsOut)
    {
        int batch = (int)policy.shape[0], tokens = (int)policy.shape[1];
        using var scratch = empty(new long[] { batch }, ScalarType.Float64, policy.device);
        using var stats = empty(new long[] { 2 }, ScalarType.Float64, policy.device);
        LaunchKlZ0(policy.device_index, batch, tokens, TensorMemory.DataPointer(policy),
            referenceTokens is null ? IntPtr.Zero : TensorMemory.DataPointer(referenceTokens),
            referenceSums is null ? IntPtr.Zero : TensorMemory.DataPointer(referenceSums), TensorMemory.DataPointer(mask),
            TensorMemory.DataPointer(policySums), TensorMemory.DataPointer(referenceSumsOut), TensorMemory.DataPointer(scratch),
            TensorMemory.DataPointer(stats), CallerStream);
        // The one wait: z0 is returned to the host. torch's copy runs on the same stream, after the kernel.
        using var host = stats.cpu();
        var values = host.data<double>().ToArray();
        return (values[0], values[1]);
    }

    /// <summary>One block; enqueued on <paramref name="stream"/>, not waited for.</summary>
    internal static void LaunchKlZ0(int deviceIndex, int batch, int tokens, IntPtr pPolicy, IntPtr pRefTokens, IntPtr pRefSums,
                                    IntPtr pMask, IntPtr pPolicySums, IntPtr pRefSumsOut, IntPtr pScratch, IntPtr pStatsOut, IntPtr stream)
    {
        var f = For(deviceIndex);
        using var a = new KernelArguments()
            .Pointer("policy", pPolicy, "float").Pointer("ref_tokens", pRefTokens, "float").Pointer("ref_sums_in", pRefSums, "float")
            .Pointer("mask", pMask, "unsigned char").Int("batch", batch).Int("tokens", tokens).Pointer("policy_sums", pPolicySums, "float")
            .Pointer("ref_sums", pRefSumsOut, "float").Pointer("seq_diff", pScratch, "double").Pointer("out", pStatsOut, "double");
        a.Launch(f.Context, f.KlZ0, "kl_z0_reduce", (1, 1), KlThreads, stream);
    }
}
