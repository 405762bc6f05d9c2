using Engine.Kernels;
using Engine.Kernels.Quantized;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Engine.Tests.Kernels.Quantized;

/// <summary>
/// QuantizedMatmul (forward and input gradient through autograd) against dequantize-then-matmul in float64, on the
/// CPU for every ISA the machine has (the CUDA kernel runs under the emulation in ctest).
/// </summary>
public class QuantizedMatmulTests(ITestOutputHelper output)
{
    public static TheoryData<QuantFormat, string> Cases()
    {
        var data = new TheoryData<QuantFormat, string>();
        foreach (var f in new[] { QuantFormat.Nf4, QuantFormat.Nf4DoubleQuant, QuantFormat.Int8 })
            foreach (var isa in new[] { "scalar", "avx2", "avx512" })
                data.Add(f, isa);
        return data;
    }

    static readonly object IsaLock = new();

    static QuantizedWeight RandomWeight(long rows, long cols, QuantFormat format, int seed)
    {
        using var scope = NewDisposeScope();
        var g = new TorchSharp.torch.Generator((ulong)seed);
        var w = randn(new[] { rows, cols }, generator: g) / Math.Sqrt(Math.Max(rows, cols));
        return QuantizedWeight.Quantize(w, format);
    }

    /// <summary>(max |Δ| y, max |Δ| dx) for x [.., cols] → y [.., rows] and dx from a random upstream gradient.</summary>
    (double Y, double Dx) Check(QuantizedWeight q, long[] xShape, ScalarType dtype, int seed)
    {
        using var scope = NewDisposeScope();
        var g = new TorchSharp.torch.Generator((ulong)seed);
        var x = (rand(xShape, generator: g) * 2 - 1).to(dtype).requires_grad_(true);
        var y = QuantizedMatmul.Apply(x, q);
        Assert.Equal(dtype, y.dtype);
        Assert.Equal(xShape[..^1].Append(q.Rows).ToArray(), y.shape);
        var dy = (rand(y.shape, generator: g) * 2 - 1).to(dtype);
        y.backward(new List<Tensor> { dy });
        Assert.NotNull(x.grad);

        // The reference: dequantize (to bf16 for bf16 activations, as dequantize-then-matmul in bf16 does), then
        // matmul in float64.
        var w = q.Dequantize(dtype).to(ScalarType.Float64);
        var yRef = x.detach().to(ScalarType.Float64).matmul(w.t());
        var dxRef = dy.to(ScalarType.Float64).matmul(w);
        if (dtype == ScalarType.Float32)
        {
            TensorAssert.Close(y, yRef, 1e-5, 1e-5, "y");
            TensorAssert.Close(x.grad!, dxRef, 1e-5, 1e-5, "dx");
        }
        else
        {
            // bf16 outputs: the fp32 result rounded once (half an ulp of bf16, 2^-9 relative).
            TensorAssert.Close(y, yRef, 1e-5, 1.0 / 256, "y (bf16)");
            TensorAssert.Close(x.grad!, dxRef, 1e-5, 1.0 / 256, "dx (bf16)");
        }
        return ((y.to(ScalarType.Float64) - yRef).abs().max().item<double>(), (x.grad!.to(ScalarType.Float64) - dxRef).abs().max().item<double>());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_and_input_gradient_equal_dequantize_then_matmul(QuantFormat format, string isa)
    {
        lock (IsaLock)
        {
            if (!NativeKernels.TryForceIsa(isa)) return; // this CPU lacks the ISA (the scalar path always runs)
            try
            {
                using var q = RandomWeight(96, 320, format, 1);
                using var odd = RandomWeight(33, 70, format, 2);
                foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
                {
                    var a = Check(q, new long[] { 2, 13, 320 }, dtype, 3);
                    var b = Check(odd, new long[] { 5, 70 }, dtype, 4);
                    output.WriteLine($"{format.Name()} {isa} {dtype}: max |dy| {Math.Max(a.Y, b.Y):G3}, max |dx| {Math.Max(a.Dx, b.Dx):G3}");
                }
            }
            finally
            {
                NativeKernels.TryForceIsa(null);
            }
        }
    }

    [Fact]
    public void Frozen_base_of_a_linear_layer_with_a_trainable_bias()
    {
        // y = QuantizedMatmul(x, W) + b: gradients reach x and b, the quantized weight has none (it is not a tensor
        // input of the graph), and the forward equals F.linear with the dequantized weight.
        using var scope = NewDisposeScope();
        using var q = RandomWeight(24, 64, QuantFormat.Nf4DoubleQuant, 5);
        var x = randn(3, 64).requires_grad_(true);
        var bias = zeros(24).requires_grad_(true);
        var y = QuantizedMatmul.Apply(x, q) + bias;
        y.sum().backward();
        Assert.NotNull(x.grad);
        TensorAssert.Close(bias.grad!, full(24, 3f), 0, 0, "bias gradient");
        var w = q.Dequantize();
        TensorAssert.Close(y, nn.functional.linear(x.detach(), w, bias.detach()), 1e-5, 1e-5, "y vs linear");
        TensorAssert.Close(x.grad!, ones(3, 24).matmul(w), 1e-5, 1e-5, "dx");
    }

    [Fact]
    public void Forward_and_InputGradient_without_autograd()
    {
        using var scope = NewDisposeScope();
        using var q = RandomWeight(40, 64, QuantFormat.Int8, 6);
        var x = randn(7, 64);
        var w = q.Dequantize().to(ScalarType.Float64);
        TensorAssert.Close(QuantizedMatmul.Forward(x, q), x.to(ScalarType.Float64).matmul(w.t()), 1e-5, 1e-5, "forward");
        var dy = randn(7, 40);
        TensorAssert.Close(QuantizedMatmul.InputGradient(dy, q), dy.to(ScalarType.Float64).matmul(w), 1e-5, 1e-5, "input gradient");
        Assert.Equal(new long[] { 0, 40 }, QuantizedMatmul.Forward(zeros(0, 64), q).shape);
    }

    [Fact]
    public void Bad_inputs_are_clear_errors()
    {
        using var scope = NewDisposeScope();
        using var q = RandomWeight(8, 64, QuantFormat.Nf4, 7);
        Assert.Contains("does not end in 64", Assert.Throws<EngineException>(() => QuantizedMatmul.Apply(zeros(2, 63), q)).Message);
        Assert.Contains("float32 or bfloat16", Assert.Throws<EngineException>(() => QuantizedMatmul.Apply(zeros(new long[] { 2, 64 }, ScalarType.Float16), q)).Message);
        q.Dispose();
        Assert.Throws<ObjectDisposedException>(() => QuantizedMatmul.Forward(zeros(2, 64), q));
    }
}
