using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Kernels.Quantized;

/// <summary>
/// A frozen weight [Rows = out features, Cols = in features] stored quantized (<see cref="QuantFormat"/>), on the CPU
/// or a CUDA device. Owns its buffers (they are detached from any dispose scope; dispose the weight). Quantizing is
/// deterministic: the same weight gives the same bytes. Multiply with <see cref="QuantizedMatmul"/>.
/// </summary>
public sealed class QuantizedWeight : IDisposable
{
    public QuantFormat Format { get; }
    public long Rows { get; }
    public long Cols { get; }
    /// <summary>The codes: uint8 [ceil(Rows·Cols/2)] for NF4 (value 2i in the high nibble), int8 bits [Rows·Cols] for Int8.</summary>
    public Tensor Data { get; }
    /// <summary>fp32 per block of 64: the absmax (NF4) or the scale absmax/127 (Int8); null for NF4 double-quant.</summary>
    public Tensor? Absmax { get; }
    /// <summary>NF4 double-quant: uint8 index into <see cref="AbsmaxCode"/> per block.</summary>
    public Tensor? QuantizedAbsmax { get; }
    /// <summary>NF4 double-quant: fp32 scale per group of 256 blocks.</summary>
    public Tensor? Absmax2 { get; }
    /// <summary>NF4 double-quant: the 256-entry signed dynamic code (fp32, ascending).</summary>
    public Tensor? AbsmaxCode { get; }
    /// <summary>NF4 double-quant: added to every dequantized absmax (their mean before quantization).</summary>
    public float AbsmaxOffset { get; }

    Tensor? deviceNf4Code;
    bool disposed;

    QuantizedWeight(QuantFormat format, long rows, long cols, Tensor data, Tensor? absmax, Tensor? qabsmax, Tensor? absmax2,
                    Tensor? code, float offset)
    {
        Format = format;
        Rows = rows;
        Cols = cols;
        Data = data.DetachFromDisposeScope();
        Absmax = absmax?.DetachFromDisposeScope();
        QuantizedAbsmax = qabsmax?.DetachFromDisposeScope();
        Absmax2 = absmax2?.DetachFromDisposeScope();
        AbsmaxCode = code?.DetachFromDisposeScope();
        AbsmaxOffset = offset;
    }

    public Device Device
    {
        get
        {
            ThrowIfDisposed();
            return Data.device;
        }
    }
    public long[] Shape => new[] { Rows, Cols };
    public long Parameters => Rows * Cols;

    /// <summary>Bytes stored (codes, block statistics, the per-tensor code and offset).</summary>
    public long Bytes => Buffers().Sum(TensorMemory.ByteLength) + (Format == QuantFormat.Nf4DoubleQuant ? sizeof(float) : 0);

    /// <summary>The format's bytes per parameter (<see cref="QuantFormats.BytesPerParameter"/>).</summary>
    public double BytesPerParameter => Format.BytesPerParameter();

    IEnumerable<Tensor> Buffers()
    {
        yield return Data;
        if (Absmax is not null) yield return Absmax;
        if (QuantizedAbsmax is not null) yield return QuantizedAbsmax;
        if (Absmax2 is not null) yield return Absmax2;
        if (AbsmaxCode is not null) yield return AbsmaxCode;
    }

    /// <summary>
    /// Quantizes a 2-D weight [out, in] (f32, bf16, f16 or f64; any device) into <paramref name="format"/>, on the
    /// weight's device. A weight that is not 2-D, is empty, or holds NaN/infinity is an EngineException.
    /// </summary>
    public static QuantizedWeight Quantize(Tensor weight, QuantFormat format)
    {
        if (weight.dim() != 2 || weight.shape[0] == 0 || weight.shape[1] == 0)
            throw new EngineException($"quantize: the weight must be a non-empty 2-D [out, in] tensor, got [{string.Join(", ", weight.shape)}]");
        if (weight.dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float64))
            throw new EngineException($"quantize: the weight must be floating point, got {weight.dtype}");
        long rows = weight.shape[0], cols = weight.shape[1], n = rows * cols;
        long blocks = (n + QuantFormats.BlockSize - 1) / QuantFormats.BlockSize;
        QuantizedWeight cpuWeight;
        using (var scope = NewDisposeScope())
        {
            var source = weight.detach().to(CPU);
            if (source.dtype is not (ScalarType.Float32 or ScalarType.BFloat16)) source = source.to(ScalarType.Float32);
            source = source.contiguous();
            if (!source.isfinite().all().item<bool>()) throw new EngineException("quantize: the weight contains NaN or infinity");

            var data = zeros(new[] { format == QuantFormat.Int8 ? n : (n + 1) / 2 }, ScalarType.Byte);
            Tensor? absmax = null, qabsmax = null, absmax2 = null, code = null;
            if (format == QuantFormat.Nf4DoubleQuant)
            {
                qabsmax = zeros(new[] { blocks }, ScalarType.Byte);
                absmax2 = zeros(new[] { (blocks + QuantFormats.DoubleQuantGroup - 1) / QuantFormats.DoubleQuantGroup }, ScalarType.Float32);
                code = zeros(new[] { 256L }, ScalarType.Float32);
            }
            else
                absmax = zeros(new[] { blocks }, ScalarType.Float32);
            var native = NativeView(format, rows, cols, data, absmax, qabsmax, absmax2, code, 0f);
            QuantizedNative.Quantize(TensorMemory.DataPointer(source), source.dtype == ScalarType.BFloat16 ? NativeKernels.DtypeBf16 : NativeKernels.DtypeF32, ref native);
            cpuWeight = new QuantizedWeight(format, rows, cols, data, absmax, qabsmax, absmax2, code, native.Offset);
        }
        if (weight.device_type == DeviceType.CPU) return cpuWeight;
        using (cpuWeight) return cpuWeight.To(weight.device);
    }

    /// <summary>The dequantized weight [Rows, Cols] on the weight's device: fp32, or bf16 (each value rounded to nearest even).</summary>
    public Tensor Dequantize(ScalarType dtype = ScalarType.Float32)
    {
        ThrowIfDisposed();
        if (dtype is not (ScalarType.Float32 or ScalarType.BFloat16))
            throw new EngineException($"dequantize: the output must be float32 or bfloat16, got {dtype}");
        if (Device.type != DeviceType.CPU)
        {
            // Through the CPU (merges and exports are rare); the matmul itself never dequantizes the whole weight.
            using var cpu = To(CPU);
            using var host = cpu.Dequantize(dtype);
            return host.to(Device);
        }
        var output = empty(new[] { Rows, Cols }, dtype);
        QuantizedNative.Dequantize(NativeView(), dtype == ScalarType.BFloat16 ? NativeKernels.DtypeBf16 : NativeKernels.DtypeF32,
            TensorMemory.DataPointer(output));
        return output;
    }

    /// <summary>A copy of this weight on <paramref name="device"/>.</summary>
    public QuantizedWeight To(Device device)
    {
        ThrowIfDisposed();
        using var scope = NewDisposeScope();
        return new QuantizedWeight(Format, Rows, Cols, Data.to(device).clone(), Absmax?.to(device).clone(), QuantizedAbsmax?.to(device).clone(),
            Absmax2?.to(device).clone(), AbsmaxCode?.to(device).clone(), AbsmaxOffset);
    }

    /// <summary>The buffers as engine_native.h's EngineQuantWeight (host or device pointers, as the tensors are).</summary>
    internal QuantizedNative.Weight NativeView()
    {
        ThrowIfDisposed();
        return NativeView(Format, Rows, Cols, Data, Absmax, QuantizedAbsmax, Absmax2, AbsmaxCode, AbsmaxOffset);
    }

    static QuantizedNative.Weight NativeView(QuantFormat format, long rows, long cols, Tensor data, Tensor? absmax, Tensor? qabsmax,
                                             Tensor? absmax2, Tensor? code, float offset) => new()
    {
        Format = format.NativeCode(),
        Rows = rows,
        Cols = cols,
        Data = TensorMemory.DataPointer(data),
        Absmax = absmax is null ? IntPtr.Zero : TensorMemory.DataPointer(absmax),
        QAbsmax = qabsmax is null ? IntPtr.Zero : TensorMemory.DataPointer(qabsmax),
        Absmax2 = absmax2 is null ? IntPtr.Zero : TensorMemory.DataPointer(absmax2),
        Code2 = code is null ? IntPtr.Zero : TensorMemory.DataPointer(code),
        Offset = offset,
    };

    /// <summary>The 16 NF4 values on this weight's device (the CUDA kernel reads them from there).</summary>
    internal Tensor DeviceNf4Code()
    {
        ThrowIfDisposed();
        return deviceNf4Code ??= tensor(QuantizedNative.Nf4Code()).to(Device).DetachFromDisposeScope();
    }

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var t in Buffers()) t.Dispose();
        deviceNf4Code?.Dispose();
    }
}
