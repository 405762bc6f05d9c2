using System.Globalization;
using System.Text.RegularExpressions;

namespace Engine.Memory;

/// <summary>Memory sizes as users write them: 8GiB, 7.5GB, 8192MiB, 512M, 1073741824.</summary>
public static partial class ByteSize
{
    [GeneratedRegex(@"^\s*(?<n>[0-9]+(\.[0-9]+)?)\s*(?<u>[a-zA-Z]*)\s*$")]
    private static partial Regex Pattern();

    static readonly Dictionary<string, double> Units = new(StringComparer.OrdinalIgnoreCase)
    {
        [""] = 1, ["b"] = 1,
        ["kib"] = 1L << 10, ["mib"] = 1L << 20, ["gib"] = 1L << 30, ["tib"] = 1L << 40,
        ["k"] = 1L << 10, ["m"] = 1L << 20, ["g"] = 1L << 30, ["t"] = 1L << 40,
        ["kb"] = 1e3, ["mb"] = 1e6, ["gb"] = 1e9, ["tb"] = 1e12,
    };

    /// <summary>Parses a size; <paramref name="what"/> names the input in the error (e.g. "--vram").</summary>
    public static long Parse(string text, string what)
    {
        var m = Pattern().Match(text ?? "");
        if (!m.Success || !Units.TryGetValue(m.Groups["u"].Value, out double unit))
            throw new EngineException($"{what}: cannot read '{text}' as a size (expected e.g. 8GiB, 7.5GB, 8192MiB or a byte count)");
        double bytes = double.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture) * unit;
        if (!(bytes >= 1)) throw new EngineException($"{what}: the size must be positive (got '{text}')");
        if (bytes > (double)(1L << 50)) throw new EngineException($"{what}: '{text}' is implausibly large (more than 1 PiB)");
        return (long)Math.Round(bytes);
    }

    /// <summary>Human-readable binary size: 7.42 GiB, 312.5 MiB, 96 KiB.</summary>
    public static string Format(long bytes)
    {
        double a = Math.Abs((double)bytes);
        string sign = bytes < 0 ? "-" : "";
        if (a >= 1L << 30) return $"{sign}{a / (1L << 30):0.00} GiB";
        if (a >= 1L << 20) return $"{sign}{a / (1L << 20):0.0} MiB";
        if (a >= 1L << 10) return $"{sign}{a / (1L << 10):0} KiB";
        return $"{sign}{a:0} B";
    }
}
