using System.Text;
using Engine.Models;
using Engine.Tests.Infrastructure;
using static TorchSharp.torch;

namespace Engine.Tests.Models;

public class SafetensorsTests
{
    /// <summary>Writes a raw safetensors file with the given header JSON and data bytes.</summary>
    static string WriteRaw(TempDir dir, string headerJson, byte[] data, long? declaredHeaderLength = null)
    {
        string path = dir.File("model.safetensors");
        var header = Encoding.UTF8.GetBytes(headerJson);
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes((ulong)(declaredHeaderLength ?? header.Length)));
        fs.Write(header);
        fs.Write(data);
        return path;
    }

    static EngineException Fails(string path) => Assert.Throws<EngineException>(() => { using var f = SafetensorsFile.Open(path); });

    [Fact]
    public void RoundTripsValuesAndDtypes()
    {
        using var dir = new TempDir();
        using var a = arange(6, dtype: ScalarType.Float32).reshape(2, 3);
        using var b = tensor(new float[] { 1.5f, -2.25f }).to(ScalarType.BFloat16);
        SafetensorsWriter.Write(dir.File("t.safetensors"), new[] { ("a", a), ("b", b) });
        using var f = SafetensorsFile.Open(dir.File("t.safetensors"));
        Assert.Equal(new long[] { 2, 3 }, f.Entries["a"].Shape);
        Assert.Equal("BF16", f.Entries["b"].Dtype);
        using var ra = f.Read("a");
        using var rb = f.Read("b");
        Assert.Equal(new float[] { 0, 1, 2, 3, 4, 5 }, ra.data<float>().ToArray());
        Assert.Equal(new float[] { 1.5f, -2.25f }, rb.to(ScalarType.Float32).data<float>().ToArray());
        // Header is padded to 8 bytes as the format requires.
        var bytes = File.ReadAllBytes(dir.File("t.safetensors"));
        Assert.Equal(0UL, BitConverter.ToUInt64(bytes, 0) % 8);
    }

    [Fact]
    public void HeaderLengthPastEndOfFile()
    {
        using var dir = new TempDir();
        var e = Fails(WriteRaw(dir, "{}", Array.Empty<byte>(), declaredHeaderLength: 1_000_000));
        Assert.Contains("past the end", e.Message);
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void TruncatedBelowHeaderLengthField()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("model.safetensors"), new byte[] { 1, 2, 3 });
        Assert.Contains("truncated", Fails(dir.File("model.safetensors")).Message);
    }

    [Fact]
    public void TruncatedData()
    {
        using var dir = new TempDir();
        var e = Fails(WriteRaw(dir, """{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", new byte[8]));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("past the end", e.Message);
    }

    [Fact]
    public void OffsetsOutOfRange()
    {
        using var dir = new TempDir();
        var e = Fails(WriteRaw(dir, """{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}""", new byte[16]));
        Assert.Contains("invalid data_offsets", e.Message);
    }

    [Fact]
    public void OverlappingTensors()
    {
        using var dir = new TempDir();
        var e = Fails(WriteRaw(dir,
            """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", new byte[16]));
        Assert.Contains("overlap", e.Message);
    }

    [Fact]
    public void UnknownDtype()
    {
        using var dir = new TempDir();
        var e = Fails(WriteRaw(dir, """{"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}""", new byte[1]));
        Assert.Contains("unknown dtype 'F8_E9'", e.Message);
    }

    [Fact]
    public void ShapeTimesDtypeMismatch()
    {
        using var dir = new TempDir();
        var e = Fails(WriteRaw(dir, """{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", new byte[8]));
        Assert.Contains("needs 12 bytes", e.Message);
    }

    [Fact]
    public void HugeShapeDoesNotAllocate()
    {
        using var dir = new TempDir();
        var e = Fails(WriteRaw(dir, """{"w":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}}""", new byte[8]));
        Assert.Contains("overflows", e.Message);
    }

    [Fact]
    public void InvalidJsonHeader()
    {
        using var dir = new TempDir();
        var e = Fails(WriteRaw(dir, """{"w": {"dtype": "F32", """, new byte[8]));
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void ShardIndexNamingMissingShard()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("model.safetensors.index.json"), """{"weight_map":{"w":"model-00001-of-00002.safetensors"}}""");
        var e = Assert.Throws<EngineException>(() => new SafetensorsWeightSource(dir.Path));
        Assert.Contains("model-00001-of-00002.safetensors", e.Message);
    }

    [Fact]
    public void ShardIndexOutsideFolderIsRejected()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("model.safetensors.index.json"), """{"weight_map":{"w":"../evil.safetensors"}}""");
        var e = Assert.Throws<EngineException>(() => new SafetensorsWeightSource(dir.Path));
        Assert.Contains("outside the folder", e.Message);
    }
}
