using Engine.Models;
using Engine.Util;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Engine.Adapters;

/// <summary>Turns every adapter of one model off at once (the reference is the base model with adapters off).</summary>
public sealed class AdapterSwitch
{
    public bool Enabled { get; set; } = true;
}

/// <summary>
/// LoRA on one linear layer: y = base(x) + scaling · B(A(dropout(x))), A [r, in], B [out, r]. Dropout acts only while the
/// layer's module is in training mode, as in PEFT.
/// </summary>
public sealed class LoraLayer : ILinearAdapter, IDisposable
{
    readonly Projection _target;
    readonly AdapterSwitch _switch;
    public Parameter A { get; private set; }
    public Parameter B { get; private set; }
    public double Scaling { get; }
    readonly Scalar _scaling; // held by the layer: a temporary Scalar could be finalized mid-call (see StableScalars)
    public double Dropout { get; }
    internal Projection Target => _target;

    internal LoraLayer(Projection target, Tensor a, Tensor b, double scaling, double dropout, AdapterSwitch sw)
    {
        _target = target;
        _switch = sw;
        A = new Parameter(a, requires_grad: true);
        B = new Parameter(b, requires_grad: true);
        Scaling = scaling;
        _scaling = scaling;
        Dropout = dropout;
    }

    /// <summary>PEFT's initialisation: A Kaiming-uniform with a = √5 (bound 1/√in), B zero, so the update starts at 0.</summary>
    internal static (Tensor A, Tensor B) Initial(long inFeatures, long outFeatures, int rank, Generator gen)
    {
        double bound = 1.0 / Math.Sqrt(inFeatures);
        var a = rand(new long[] { rank, inFeatures }, dtype: ScalarType.Float32, generator: gen) * (2 * bound) - bound;
        return (a, zeros(outFeatures, rank, dtype: ScalarType.Float32));
    }

    public Tensor Forward(Tensor x, Tensor baseOutput)
    {
        if (!_switch.Enabled) return baseOutput;
        var h = Dropout > 0 && _target.training ? F.dropout(x, Dropout, true) : x;
        return StableScalars.Add(baseOutput, F.linear(F.linear(h, A), B).mul(_scaling));
    }

    /// <summary>scaling · B·A in fp32, the update the merged weight gets.</summary>
    public Tensor Delta()
    {
        using var scope = NewDisposeScope();
        return (B.detach().to(ScalarType.Float32).matmul(A.detach().to(ScalarType.Float32)) * Scaling).MoveToOuterDisposeScope();
    }

    internal void ConvertTo(ScalarType dtype)
    {
        if (A.dtype == dtype) return;
        var (a, b) = (A, B);
        A = new Parameter(a.detach().to(dtype), requires_grad: true);
        B = new Parameter(b.detach().to(dtype), requires_grad: true);
        a.Dispose(); b.Dispose();
    }

    internal void Load(Tensor a, Tensor b)
    {
        using var noGrad = no_grad();
        if (!a.shape.SequenceEqual(A.shape) || !b.shape.SequenceEqual(B.shape))
            throw new EngineException($"adapter shapes [{string.Join(",", a.shape)}]/[{string.Join(",", b.shape)}] do not fit the layer " +
                $"(expected [{string.Join(",", A.shape)}]/[{string.Join(",", B.shape)}])");
        A.copy_(a); B.copy_(b);
    }

    public void Dispose()
    {
        if (ReferenceEquals(_target.Adapter, this)) _target.Adapter = null;
        A.Dispose(); B.Dispose(); _scaling.Dispose();
    }
}
