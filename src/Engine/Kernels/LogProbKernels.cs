using Engine.Kernels.Cuda;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels;

/// <summary>
/// The fused log-prob kernels on tensors: checks shapes, then runs the native CPU kernels for CPU tensors or the
/// CUDA kernels for CUDA tensors. Inputs must be contiguous; outputs are written into caller-provided tensors.
/// </summary>
internal static class LogProbKernels
{
    public static int DtypeCode(Tensor logits) => logits.dtype switch
    {
        ScalarType.Float32 => NativeKernels.DtypeF32,
        ScalarType.BFloat16 => NativeKernels.DtypeBf16,
        _ => throw new EngineException($"the fused log-prob kernels take float32 or bfloat16 logits (got {TensorMemory.DtypeName(logits.dtype)}); use --logprob naive for other dtypes"),
    };

    public static bool SameDevice(Tensor a, Tensor b) => a.device_type == b.device_type && a.device_index == b.device_index;

    static void CheckInputs(Tensor logits, Tensor labels)
    {
        if (logits.dim() != 2) throw new ArgumentException($"logits must be [rows, vocab] (got {logits.dim()} dimensions)");
        DtypeCode(logits);
        if (labels.dtype != ScalarType.Int64 || labels.dim() != 1 || labels.shape[0] != logits.shape[0])
            throw new ArgumentException($"labels must be int64 [{logits.shape[0]}] (got {labels.dtype} [{string.Join(", ", labels.shape)}])");
        if (!SameDevice(labels, logits)) throw new ArgumentException($"labels are on {labels.device}, logits on {logits.device}");
        if (!logits.is_contiguous() || !labels.is_contiguous()) throw new ArgumentException("logits and labels must be contiguous");
        if (logits.device_type is not (DeviceType.CPU or DeviceType.CUDA))
            throw new EngineException($"the fused log-prob kernels run on CPU or CUDA tensors (got {logits.device})");
    }

    static void CheckOutput(Tensor t, Tensor logits, ScalarType dtype, params long[] shape)
    {
        if (t.dtype != dtype || !t.shape.SequenceEqual(shape) || !t.is_contiguous() || !SameDevice(t, logits))
            throw new ArgumentException($"output must be contiguous {dtype} [{string.Join(", ", shape)}] on {logits.device}");
    }

    /// <summary>logp [N], stats [N, 2] (row max, log-sum-exp offset) and the mean logit [N], written in one pass.</summary>
    public static void ForwardInto(Tensor logits, Tensor labels, Tensor logp, Tensor stats, Tensor means)
    {
        CheckInputs(logits, labels);
        long rows = logits.shape[0], vocab = logits.shape[1];
        CheckOutput(logp, logits, ScalarType.Float32, rows);
        CheckOutput(stats, logits, ScalarType.Float32, rows, 2);
        CheckOutput(means, logits, ScalarType.Float32, rows);
        if (logits.device_type == DeviceType.CUDA)
        {
            CudaKernels.Forward(logits, labels, logp, stats, means);
            return;
        }
        NativeKernels.Forward(TensorMemory.DataPointer(logits), DtypeCode(logits), TensorMemory.DataPointer(labels), rows, vocab,
            TensorMemory.DataPointer(logp), TensorMemory.DataPointer(stats), TensorMemory.DataPointer(means));
    }

    public static (Tensor LogProbs, Tensor Stats, Tensor Means) Forward(Tensor logits, Tensor labels)
    {
        long rows = logits.shape[0];
        var logp = empty(new[] { rows }, ScalarType.Float32, logits.device);
        var stats = empty(new[] { rows, 2L }, ScalarType.Float32, logits.device);
        var means = empty(new[] { rows }, ScalarType.Float32, logits.device);
        ForwardInto(logits, labels, logp, stats, means);
        return (logp, stats, means);
    }

    /// <summary>grad = gradOut · (onehot(label) − softmax), in the logits' dtype; <paramref name="grad"/> may be <paramref name="logits"/>.</summary>
    public static void Backward(Tensor logits, Tensor labels, Tensor stats, Tensor gradOut, Tensor grad)
    {
        CheckInputs(logits, labels);
        long rows = logits.shape[0], vocab = logits.shape[1];
        CheckOutput(stats, logits, ScalarType.Float32, rows, 2);
        CheckOutput(gradOut, logits, ScalarType.Float32, rows);
        CheckOutput(grad, logits, logits.dtype, rows, vocab);
        if (logits.device_type == DeviceType.CUDA)
        {
            CudaKernels.Backward(logits, labels, stats, gradOut, grad);
            return;
        }
        NativeKernels.Backward(TensorMemory.DataPointer(logits), DtypeCode(logits), TensorMemory.DataPointer(labels),
            TensorMemory.DataPointer(stats), TensorMemory.DataPointer(gradOut), rows, vocab, TensorMemory.DataPointer(grad));
    }

    /// <summary>
    /// A new buffer for the logits' gradient. On the CPU a large one is advised onto transparent huge pages before
    /// its first touch: otherwise the 4 KiB page faults of a fresh [rows, vocab] buffer cost more than the kernel.
    /// </summary>
    public static Tensor NewGradientBuffer(Tensor logits)
    {
        var grad = empty_like(logits);
        long bytes = grad.numel() * grad.element_size();
        if (grad.device_type == DeviceType.CPU && bytes >= (8L << 20)) NativeKernels.AdviseHugePages(TensorMemory.DataPointer(grad), bytes);
        return grad;
    }

    /// <summary>The benchmark's hardware floor: sum of exp over each row, one read and one exp per logit (CPU).</summary>
    public static Tensor FloorExpSum(Tensor logits)
    {
        if (logits.device_type != DeviceType.CPU || logits.dim() != 2 || !logits.is_contiguous())
            throw new ArgumentException("the floor kernel takes contiguous [rows, vocab] CPU logits");
        var output = empty(new[] { logits.shape[0] }, ScalarType.Float32);
        NativeKernels.FloorExpSum(TensorMemory.DataPointer(logits), DtypeCode(logits), logits.shape[0], logits.shape[1], TensorMemory.DataPointer(output));
        return output;
    }

    /// <summary>Label range check with torch ops (for device tensors the kernels cannot report errors from).</summary>
    public static void ValidateLabelsWithTorch(Tensor labels, long vocab)
    {
        using var scope = NewDisposeScope();
        var bad = labels.ne(TokenLogProbs.IgnoreIndex).logical_and(labels.lt(0).logical_or(labels.ge(vocab)));
        if (!bad.any().item<bool>()) return;
        long row = bad.nonzero()[0, 0].item<long>();
        long label = labels[row].item<long>();
        throw new EngineException($"label {label} at row {row} is outside the vocabulary [0, {vocab}) (and is not the ignore index {TokenLogProbs.IgnoreIndex})");
    }
}
