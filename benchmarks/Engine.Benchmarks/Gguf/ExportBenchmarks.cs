using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Engine.Bench;
using Engine.Gguf;
using Engine.Gguf.Quantization;

namespace Engine.Benchmarks.Gguf;

/// <summary>
/// GGUF export against a plain copy of the same source file (the baseline ratio is the figure that matters),
/// and Q4_K quantization on one core versus all cores. `./engine bench export --json` measures the same.
/// </summary>
[Config(typeof(Config))]
public class ExportBenchmarks
{
    sealed class Config : ManualConfig
    {
        public Config() => AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance));
    }

    string _work = "", _model = "", _weights = "";
    float[] _values = Array.Empty<float>();
    byte[] _encoded = Array.Empty<byte>();

    [GlobalSetup]
    public void Setup()
    {
        _work = Path.Combine(Path.GetTempPath(), $"engine-bdn-export-{Environment.ProcessId}");
        _model = GgufExportBenchmark.CreateSyntheticModel(Path.Combine(_work, "model"));
        _weights = Path.Combine(_model, "model.safetensors");
        _values = new float[1 << 22];
        var rng = new Random(1);
        for (int i = 0; i < _values.Length; i++) _values[i] = (float)(rng.NextDouble() - 0.5);
        _encoded = new byte[GgmlTypes.RowBytes(GgmlType.Q4_K, 4096) * (_values.Length / 4096)];
    }

    [GlobalCleanup]
    public void Cleanup() => Directory.Delete(_work, true);

    [Benchmark(Baseline = true)]
    public void CopySourceFile()
    {
        string copy = Path.Combine(_work, "copy.bin");
        using (var input = new FileStream(_weights, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20))
        using (var output = new FileStream(copy, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            input.CopyTo(output, 1 << 22);
            output.Flush(true);
        }
        File.Delete(copy);
    }

    [Benchmark]
    [Arguments(GgufExportType.F16)]
    [Arguments(GgufExportType.BF16)]
    [Arguments(GgufExportType.Q8_0)]
    public void Export(GgufExportType type)
    {
        string output = Path.Combine(_work, "out.gguf");
        GgufExporter.Export(_model, output, new GgufExportOptions { Type = type, Force = true });
        File.Delete(output);
    }

    [Benchmark]
    [Arguments(1)]
    [Arguments(-1)]
    public unsafe void QuantizeQ4K(int cores)
    {
        GgmlCodec.MaxDegreeOfParallelism = cores;
        try
        {
            fixed (float* s = _values)
            fixed (byte* d = _encoded)
                GgmlCodec.EncodeRows(GgmlType.Q4_K, s, d, _values.Length / 4096, 4096);
        }
        finally { GgmlCodec.MaxDegreeOfParallelism = -1; }
    }
}

/// <summary>
/// The conversions export spends its CPU time in, on 4 Mi floats held in cache-sized rows, at each vector width:
/// the scalar path is the baseline.
/// </summary>
[Config(typeof(Config))]
public class ConversionBenchmarks
{
    sealed class Config : ManualConfig
    {
        public Config() => AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance));
    }

    const int Row = 4096;
    float[] _values = Array.Empty<float>();
    ushort[] _halves = Array.Empty<ushort>();
    byte[] _q8 = Array.Empty<byte>();

    [Params(SimdWidth.Scalar, SimdWidth.V256, SimdWidth.V512)]
    public SimdWidth Width { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _values = new float[1 << 22];
        var rng = new Random(1);
        for (int i = 0; i < _values.Length; i++) _values[i] = (float)(rng.NextDouble() - 0.5);
        _halves = new ushort[_values.Length];
        _q8 = new byte[GgmlTypes.RowBytes(GgmlType.Q8_0, Row) * (_values.Length / Row)];
    }

    [Benchmark(Baseline = true)]
    public void ToHalf()
    {
        for (int r = 0; r < _values.Length; r += Row) FloatCodecs.ToHalf(_values.AsSpan(r, Row), _halves.AsSpan(r, Row), Width);
    }

    [Benchmark]
    public void ToBFloat16()
    {
        for (int r = 0; r < _values.Length; r += Row) FloatCodecs.ToBFloat16(_values.AsSpan(r, Row), _halves.AsSpan(r, Row), Width);
    }

    [Benchmark]
    public void QuantizeQ8_0()
    {
        int rowBytes = (int)GgmlTypes.RowBytes(GgmlType.Q8_0, Row);
        for (int r = 0; r < _values.Length / Row; r++) Q8_0Codec.Quantize(_values.AsSpan(r * Row, Row), _q8.AsSpan(r * rowBytes, rowBytes), Width);
    }
}
