using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Engine.Kernels.Cuda;

/// <summary>
/// Compiled NVRTC outputs, kept per process and on disk, so the compile check (`engine kernels compile`), the
/// tests and the run-time loader compile each kernel once. The key is a SHA-256 of everything that determines the
/// output: NVRTC's version and library, the options, the file name and the source text. Only successful
/// compilations are stored. The directory is ENGINE_NVRTC_CACHE, else $XDG_CACHE_HOME/engine/nvrtc, else
/// ~/.cache/engine/nvrtc; ENGINE_NVRTC_CACHE=off keeps the cache in memory only.
/// </summary>
internal static class NvrtcCache
{
    static readonly ConcurrentDictionary<string, NvrtcOutput> Memory = new();
    static readonly byte[] Magic = "ENGINE-NVRTC-1\n"u8.ToArray();

    /// <summary>How many compilations this process has actually run (the rest came from the cache).</summary>
    public static int Compilations => compilations;
    static int compilations;

    public static string? Directory
    {
        get
        {
            string? configured = Environment.GetEnvironmentVariable("ENGINE_NVRTC_CACHE");
            if (configured is "off" or "0") return null;
            if (!string.IsNullOrEmpty(configured)) return configured;
            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            string? root = !string.IsNullOrEmpty(xdg) ? xdg : !string.IsNullOrEmpty(home) ? Path.Combine(home, ".cache") : null;
            return root is null ? null : Path.Combine(root, "engine", "nvrtc");
        }
    }

    public static string Key(string compilerIdentity, IEnumerable<string> options, string fileName, string source)
    {
        var text = new StringBuilder().Append(compilerIdentity).Append('\0');
        foreach (string o in options) text.Append(o).Append('\0');
        text.Append(fileName).Append('\0').Append(source);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()))).ToLowerInvariant();
    }

    public static NvrtcOutput GetOrCompile(string key, Func<NvrtcOutput> compile) => Memory.GetOrAdd(key, k =>
    {
        string? dir = Directory;
        string? path = dir is null ? null : Path.Combine(dir, k + ".bin");
        if (path is not null && TryRead(path) is { } cached) return cached;
        Interlocked.Increment(ref compilations);
        var output = compile();
        if (path is not null) TryWrite(path, output);
        return output;
    });

    // Layout: magic, is-cubin byte, log length (int32) + UTF-8 log, image length (int32) + image.
    static NvrtcOutput? TryRead(string path)
    {
        try
        {
            if (!File.Exists(path)) return null;
            using var reader = new BinaryReader(File.OpenRead(path));
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic)) return null;
            bool cubin = reader.ReadBoolean();
            string log = Encoding.UTF8.GetString(ReadBlock(reader));
            byte[] image = ReadBlock(reader);
            if (reader.BaseStream.Position != reader.BaseStream.Length || image.Length == 0) return null;
            return new NvrtcOutput(image, cubin, log);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or EndOfStreamException or InvalidDataException)
        {
            return null; // unreadable or truncated: compile again
        }
    }

    static byte[] ReadBlock(BinaryReader reader)
    {
        int length = reader.ReadInt32();
        if (length < 0 || length > reader.BaseStream.Length - reader.BaseStream.Position) throw new InvalidDataException();
        return reader.ReadBytes(length);
    }

    /// <summary>Written to a temporary file and renamed, so a reader never sees half a file; failures only cost a recompile later.</summary>
    static void TryWrite(string path, NvrtcOutput output)
    {
        string tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            using (var writer = new BinaryWriter(File.Create(tmp)))
            {
                writer.Write(Magic);
                writer.Write(output.IsCubin);
                byte[] log = Encoding.UTF8.GetBytes(output.Log);
                writer.Write(log.Length);
                writer.Write(log);
                writer.Write(output.Image.Length);
                writer.Write(output.Image);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { }
        }
    }

    /// <summary>Tests: forget the in-memory entries (the disk cache stays).</summary>
    internal static void ClearMemory() => Memory.Clear();
}
