using Engine.Kernels;
using Engine.Kernels.Cuda;
using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>How <see cref="AdamW"/> runs its update (the state, checkpoints and results are the same either way).</summary>
public enum OptimizerKernel
{
    /// <summary>
    /// The multi-tensor native kernel (native/src/adamw.cpp): one pass over all parameters on the kernels' thread
    /// pool, after one pass over the gradients for the clipping norm. CPU tensors; CUDA tensors take the same kernel
    /// in native/cuda/adamw.cu (<see cref="Kernels.Cuda.AdamWCudaKernels"/>); other devices fall back to <see cref="Torch"/>.
    /// </summary>
    [Spelling("fused")] Fused,
    /// <summary>libtorch's composite ops, about ten per parameter tensor.</summary>
    [Spelling("torch")] Torch,
}

/// <summary>
/// AdamW (decoupled weight decay, bias-corrected moments) written out so that its state can be checkpointed
/// exactly and so that it can keep fp32 master weights for parameters computed in bf16: gradients arrive on
/// the compute parameters, the update happens on the fp32 master, and the result is copied back.
/// <see cref="Kernel"/> chooses between the multi-tensor native kernel and libtorch's ops; both run the same
/// arithmetic on the same state (docs/kernels.md, "Multi-tensor AdamW").
/// </summary>
public sealed class AdamW : IDisposable
{
    public sealed class Slot
    {
        public required string Name { get; init; }
        /// <summary>The parameter the model computes with (receives .grad).</summary>
        public required TorchSharp.Modules.Parameter Parameter { get; init; }
        /// <summary>fp32 copy updated by the optimizer when the parameter is not fp32; else null.</summary>
        public Tensor? Master { get; set; }
        public required Tensor ExpAvg { get; init; }
        public required Tensor ExpAvgSq { get; init; }
        public bool Decay { get; init; }
    }

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    public long StepCount { get; private set; }
    /// <summary>The implementation of <see cref="Step"/> and <see cref="ClipGradients"/>; may change between steps.</summary>
    public OptimizerKernel Kernel { get; set; }
    public IReadOnlyList<Slot> Slots => _slots;
    readonly List<Slot> _slots = new();

    /// <param name="stateDtype">dtype of the moment estimates (fp32, or bf16 to halve their memory)</param>
    /// <param name="masterWeights">keep fp32 masters for parameters that are not fp32</param>
    /// <param name="masters">initial fp32 master values by name (e.g. the checkpoint's values before a cast to bf16);
    /// otherwise masters start from the parameters themselves</param>
    public AdamW(IEnumerable<(string Name, TorchSharp.Modules.Parameter Parameter)> parameters, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0.0, ScalarType stateDtype = ScalarType.Float32, bool masterWeights = true,
        IReadOnlyDictionary<string, Tensor>? masters = null, OptimizerKernel kernel = OptimizerKernel.Torch)
    {
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay; Kernel = kernel;
        foreach (var (name, p) in parameters)
        {
            if (!p.requires_grad) continue;
            Tensor? master = null;
            if (masterWeights && p.dtype != ScalarType.Float32)
                master = masters != null && masters.TryGetValue(name, out var m) ? m.detach().to(ScalarType.Float32).clone() : p.detach().to(ScalarType.Float32).clone();
            _slots.Add(new Slot
            {
                Name = name,
                Parameter = p,
                Master = master,
                ExpAvg = zeros_like(p, dtype: stateDtype),
                ExpAvgSq = zeros_like(p, dtype: stateDtype),
                // Norms and other 1-D parameters are not decayed (the usual HF grouping).
                Decay = p.dim() >= 2,
            });
        }
    }

    public void ZeroGrad()
    {
        foreach (var s in _slots) s.Parameter.grad?.zero_();
        _pendingGradScale = 1.0;
    }

    // The clipping factor that the fused ClipGradients leaves for the next Step to apply as it reads each gradient
    // (the composite path multiplies the gradients in place instead).
    double _pendingGradScale = 1.0;

    /// <summary>One update at learning rate <paramref name="lr"/>.</summary>
    public void Step(double lr)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount);
        double bc2 = 1 - Math.Pow(Beta2, StepCount);
        using var noGrad = no_grad();
        double gradScale = _pendingGradScale;
        _pendingGradScale = 1.0;
        using (var fusedScope = NewDisposeScope())
        {
            if (FusedTensors() is { } fused)
            {
                FusedStep(fused, Hyper(lr, bc1, bc2, gradScale));
                return;
            }
        }
        if (gradScale != 1.0) ScaleGradients(gradScale);
        foreach (var s in _slots)
        {
            var grad = s.Parameter.grad;
            if (grad is null) continue;
            using var scope = NewDisposeScope();
            var target = s.Master ?? s.Parameter;
            var g = grad.to(ScalarType.Float32);
            if (s.Decay && WeightDecay != 0) target.mul_(1 - lr * WeightDecay);
            bool fp32State = s.ExpAvg.dtype == ScalarType.Float32;
            var m = fp32State ? s.ExpAvg : s.ExpAvg.to(ScalarType.Float32);
            var v = fp32State ? s.ExpAvgSq : s.ExpAvgSq.to(ScalarType.Float32);
            m.mul_(Beta1).add_(g, alpha: 1 - Beta1);
            v.mul_(Beta2).addcmul_(g, g, value: 1 - Beta2);
            var denom = (v / bc2).sqrt_().add_(Eps);
            target.addcdiv_(m, denom, value: -lr / bc1);
            if (!fp32State)
            {
                s.ExpAvg.copy_(m);
                s.ExpAvgSq.copy_(v);
            }
            if (s.Master is not null) s.Parameter.copy_(s.Master);
        }
    }

    /// <summary>
    /// Global L2 norm of all gradients (fp32), and optional clipping to <paramref name="maxNorm"/>. The fused kernel
    /// leaves the gradients as they are and applies the clipping factor in the next <see cref="Step"/> (cleared by
    /// <see cref="ZeroGrad"/>); the composite path scales them in place.
    /// </summary>
    /// <param name="agree">maps this process's norm to the one every rank of a data-parallel run uses (rank 0's), so that
    /// clipping and the non-finite guard decide identically everywhere</param>
    public double ClipGradients(double maxNorm, Func<double, double>? agree = null)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        _pendingGradScale = 1.0;
        if (FusedTensors() is { } fused)
        {
            double norm = Math.Sqrt(FusedGradSumSquares(fused));
            if (agree != null) norm = agree(norm);
            if (maxNorm > 0 && double.IsFinite(norm) && norm > maxNorm) _pendingGradScale = maxNorm / (norm + 1e-6);
            return norm;
        }
        var grads = _slots.Select(s => s.Parameter.grad).Where(g => g is not null).ToList();
        if (grads.Count == 0) return 0;
        // One gradient's fp32 square at a time: squaring all of them at once would hold a second fp32 copy of every
        // gradient (4 bytes per parameter, 8 in bf16) at the optimizer step.
        var sumSquares = zeros(1, dtype: ScalarType.Float32, device: grads[0]!.device);
        foreach (var g in grads)
        {
            using var inner = NewDisposeScope();
            sumSquares.add_(g!.to(ScalarType.Float32).pow(2).sum());
        }
        double total = sumSquares.sqrt().item<float>();
        if (agree != null) total = agree(total);
        if (maxNorm > 0 && double.IsFinite(total) && total > maxNorm)
        {
            double scale = maxNorm / (total + 1e-6);
            foreach (var g in grads) g!.mul_(scale);
        }
        return total;
    }

    void ScaleGradients(double scale)
    {
        foreach (var s in _slots)
        {
            using var g = s.Parameter.grad;
            g?.mul_(scale);
        }
    }

    /// <summary>
    /// The native kernel's view of every slot with a gradient, or null when the step must take the composite path:
    /// <see cref="OptimizerKernel.Torch"/> chosen, or a tensor that is not a contiguous f32/bf16 tensor on the first
    /// parameter's device (CPU or CUDA) with the parameter's dtype. Gradient handles are registered in the caller's dispose scope.
    /// </summary>
    NativeKernels.AdamWTensor[]? FusedTensors()
    {
        if (Kernel != OptimizerKernel.Fused) return null;
        var device = FusedDevice;
        bool Fusable(Tensor t) => t.device_type == device.type && t.device_index == device.index && t.is_contiguous() &&
                                  (t.dtype == ScalarType.Float32 || t.dtype == ScalarType.BFloat16);
        var list = new List<NativeKernels.AdamWTensor>(_slots.Count);
        foreach (var s in _slots)
        {
            var grad = s.Parameter.grad;
            if (grad is null) continue;
            var p = s.Parameter;
            if (!Fusable(p) || !Fusable(grad) || grad.dtype != p.dtype || !Fusable(s.ExpAvg) || !Fusable(s.ExpAvgSq) ||
                s.ExpAvg.dtype != s.ExpAvgSq.dtype || (s.Master is not null && (!Fusable(s.Master) || p.dtype != ScalarType.BFloat16)))
                return null;
            list.Add(new NativeKernels.AdamWTensor
            {
                Param = TensorMemory.DataPointer(p),
                Master = s.Master is null ? IntPtr.Zero : TensorMemory.DataPointer(s.Master),
                Grad = TensorMemory.DataPointer(grad),
                ExpAvg = TensorMemory.DataPointer(s.ExpAvg),
                ExpAvgSq = TensorMemory.DataPointer(s.ExpAvgSq),
                Numel = p.numel(),
                ParamDtype = p.dtype == ScalarType.Float32 ? NativeKernels.DtypeF32 : NativeKernels.DtypeBf16,
                StateDtype = s.ExpAvg.dtype == ScalarType.Float32 ? NativeKernels.DtypeF32 : NativeKernels.DtypeBf16,
                Decay = s.Decay && WeightDecay != 0 ? 1 : 0,
            });
        }
        return list.ToArray();
    }

    /// <summary>The device of the fused kernel's tensors: the first parameter's when it is a CPU or CUDA device.</summary>
    Device FusedDevice => _slots.Count > 0 && _slots[0].Parameter.device_type is DeviceType.CPU or DeviceType.CUDA
        ? _slots[0].Parameter.device : CPU;

    // The device dispatch of the fused kernel: CUDA tensors to native/cuda/adamw.cu, CPU tensors to the native library.
    double FusedGradSumSquares(NativeKernels.AdamWTensor[] fused) => FusedDevice.type == DeviceType.CUDA
        ? AdamWCudaKernels.GradSumSquares(fused, FusedDevice) : NativeKernels.AdamWGradSumSquares(fused);

    void FusedStep(NativeKernels.AdamWTensor[] fused, in NativeKernels.AdamWHyper hyper)
    {
        if (FusedDevice.type == DeviceType.CUDA) AdamWCudaKernels.Step(fused, hyper, FusedDevice);
        else NativeKernels.AdamWStep(fused, hyper);
    }

    /// <summary>The step's scalars as the composite path's ops see them: each double rounded once to f32.</summary>
    NativeKernels.AdamWHyper Hyper(double lr, double bc1, double bc2, double gradScale) => new()
    {
        Beta1 = (float)Beta1,
        OneMinusBeta1 = (float)(1 - Beta1),
        Beta2 = (float)Beta2,
        OneMinusBeta2 = (float)(1 - Beta2),
        Eps = (float)Eps,
        BiasCorrection2 = (float)bc2,
        StepSize = (float)(-lr / bc1),
        DecayFactor = (float)(1 - lr * WeightDecay),
        GradScale = (float)gradScale,
    };

    /// <summary>State tensors by name (for checkpoints): exp_avg, exp_avg_sq and master weights.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors()
    {
        foreach (var s in _slots)
        {
            yield return ($"{s.Name}.exp_avg", s.ExpAvg);
            yield return ($"{s.Name}.exp_avg_sq", s.ExpAvgSq);
            if (s.Master is not null) yield return ($"{s.Name}.master", s.Master);
        }
    }

    public void LoadState(long stepCount, IWeightSource state)
    {
        using var noGrad = no_grad();
        var names = new HashSet<string>(state.Names);
        foreach (var (name, t) in StateTensors())
        {
            if (!names.Contains(name)) throw new EngineException($"{state.Description}: optimizer state lacks '{name}'");
            using var src = state.Read(name);
            if (!src.shape.SequenceEqual(t.shape)) throw new EngineException($"{state.Description}: optimizer state '{name}' has the wrong shape");
            t.copy_(src);
        }
        StepCount = stepCount;
    }

    public void Dispose()
    {
        foreach (var s in _slots)
        {
            s.ExpAvg.Dispose();
            s.ExpAvgSq.Dispose();
            s.Master?.Dispose();
        }
    }
}
