using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>
/// AdamW (decoupled weight decay, bias-corrected moments) written out so that its state can be checkpointed
/// exactly and so that it can keep fp32 master weights for parameters computed in bf16: gradients arrive on
/// the compute parameters, the update happens on the fp32 master, and the result is copied back.
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
    public IReadOnlyList<Slot> Slots => _slots;
    readonly List<Slot> _slots = new();

    /// <param name="stateDtype">dtype of the moment estimates (fp32, or bf16 to halve their memory)</param>
    /// <param name="masterWeights">keep fp32 masters for parameters that are not fp32</param>
    /// <param name="masters">initial fp32 master values by name (e.g. the checkpoint's values before a cast to bf16);
    /// otherwise masters start from the parameters themselves</param>
    public AdamW(IEnumerable<(string Name, TorchSharp.Modules.Parameter Parameter)> parameters, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0.0, ScalarType stateDtype = ScalarType.Float32, bool masterWeights = true,
        IReadOnlyDictionary<string, Tensor>? masters = null)
    {
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
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
    }

    /// <summary>One update at learning rate <paramref name="lr"/>.</summary>
    public void Step(double lr)
    {
        StepCount++;
        double bc1 = 1 - Math.Pow(Beta1, StepCount);
        double bc2 = 1 - Math.Pow(Beta2, StepCount);
        using var noGrad = no_grad();
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

    /// <summary>Global L2 norm of all gradients (fp32), and optional clipping to <paramref name="maxNorm"/>.</summary>
    /// <param name="agree">maps this process's norm to the one every rank of a data-parallel run uses (rank 0's), so that
    /// clipping and the non-finite guard decide identically everywhere</param>
    public double ClipGradients(double maxNorm, Func<double, double>? agree = null)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
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
