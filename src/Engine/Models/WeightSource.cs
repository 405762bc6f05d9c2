using System.Text.Json;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Engine.Models;

/// <summary>
/// Named tensors in Hugging Face naming, from any on-disk format (safetensors, GGUF). The loader pulls one
/// tensor at a time, so no format keeps a second copy of the model in memory.
/// </summary>
public interface IWeightSource : IDisposable
{
    /// <summary>Where the weights come from, for error messages.</summary>
    string Description { get; }
    IReadOnlyCollection<string> Names { get; }
    long[] Shape(string name);
    /// <summary>Reads the tensor as a new CPU tensor (any dtype; the loader converts).</summary>
    Tensor Read(string name);
}

/// <summary>Single-file or sharded safetensors weights in a Hugging Face folder.</summary>
public sealed class SafetensorsWeightSource : IWeightSource
{
    readonly List<SafetensorsFile> _files = new();
    readonly Dictionary<string, SafetensorsFile> _byName = new();
    public string Description { get; }

    public SafetensorsWeightSource(string directory)
    {
        Description = directory;
        string single = Path.Combine(directory, "model.safetensors");
        string index = Path.Combine(directory, "model.safetensors.index.json");
        try
        {
            if (File.Exists(index)) OpenSharded(directory, index);
            else if (File.Exists(single)) Add(SafetensorsFile.Open(single), null);
            else throw new EngineException($"{directory}: no weights found (expected model.safetensors or model.safetensors.index.json)");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    void OpenSharded(string directory, string index)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(index)); }
        catch (JsonException e) { throw new EngineException($"{index}: invalid JSON ({e.Message})"); }
        if (root?["weight_map"] is not JsonObject map) throw new EngineException($"{index}: missing 'weight_map'");
        var expected = new Dictionary<string, string>();
        foreach (var (name, fileNode) in map)
        {
            string file = fileNode is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
                : throw new EngineException($"{index}: weight_map entry '{name}' must be a file name");
            if (file.Contains('/') || file.Contains('\\') || file.Contains(".."))
                throw new EngineException($"{index}: weight_map entry '{name}' names a file outside the folder: '{file}'");
            expected[name] = file;
        }
        foreach (var file in expected.Values.Distinct().OrderBy(f => f, StringComparer.Ordinal))
        {
            var shard = SafetensorsFile.Open(Path.Combine(directory, file));
            Add(shard, index);
        }
        foreach (var (name, file) in expected)
        {
            if (!_byName.TryGetValue(name, out var f) || System.IO.Path.GetFileName(f.Path) != file)
                throw new EngineException($"{index}: tensor '{name}' is mapped to {file} but that shard does not hold it");
        }
    }

    void Add(SafetensorsFile file, string? index)
    {
        _files.Add(file);
        foreach (var name in file.Entries.Keys)
        {
            if (_byName.TryGetValue(name, out var other))
                throw new EngineException($"tensor '{name}' appears in both {other.Path} and {file.Path}");
            _byName[name] = file;
        }
    }

    public IReadOnlyCollection<string> Names => _byName.Keys;
    public long[] Shape(string name) => _byName[name].Entries[name].Shape;
    public Tensor Read(string name) => _byName[name].Read(name);
    public string DtypeOf(string name) => _byName[name].Entries[name].Dtype;
    /// <summary>The tensor's stored bytes in its file's mapping, without a copy (see <see cref="SafetensorsFile.Map"/>).</summary>
    public MappedTensor Map(string name) => _byName[name].Map(name);

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
