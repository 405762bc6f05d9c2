using Engine.Memory;

namespace Engine.Tests.Memory;

public class ByteSizeTests
{
    [Theory]
    [InlineData("8GiB", 8L << 30)]
    [InlineData("8gib", 8L << 30)]
    [InlineData("8192MiB", 8L << 30)]
    [InlineData("7.5GB", 7_500_000_000L)]
    [InlineData("512M", 512L << 20)]
    [InlineData("1024", 1024L)]
    [InlineData(" 2 TiB ", 2L << 40)]
    public void ParsesSizesAsWritten(string text, long bytes) => Assert.Equal(bytes, ByteSize.Parse(text, "--vram"));

    [Theory]
    [InlineData("8XB")]
    [InlineData("GiB")]
    [InlineData("")]
    [InlineData("-1GiB")]
    [InlineData("0")]
    [InlineData("1e3GB")]
    [InlineData("99999999PiB")]
    public void RejectsBadSizesNamingTheOption(string text)
    {
        var e = Assert.Throws<EngineException>(() => ByteSize.Parse(text, "--vram"));
        Assert.StartsWith("--vram:", e.Message);
    }

    [Fact]
    public void FormatsBinaryUnits()
    {
        Assert.Equal("8.00 GiB", ByteSize.Format(8L << 30));
        Assert.Equal("1.5 MiB", ByteSize.Format(3L << 19));
        Assert.Equal("12 B", ByteSize.Format(12));
    }
}
