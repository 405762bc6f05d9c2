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
