using System.Text;
using System.Text.Json.Nodes;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Models;

/// <summary>Writes tensors as safetensors files, single or sharded with a Hugging Face index.</summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// Writes <paramref name="tensors"/> (name → tensor, already in the dtype to store) to <paramref name="path"/>.
    /// Streams each tensor; the file appears under its name only when complete.
    /// </summary>
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Tensor)> tensors, IDictionary<string, string>? metadata = null)
    {
        var header = new JsonObject();
        var meta = new JsonObject { ["format"] = "pt" };
        if (metadata != null) foreach (var (k, v) in metadata) meta[k] = v;
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (var (name, t) in tensors)
        {
            long len = TensorMemory.ByteLength(t);
            header[name] = new JsonObject
            {
                ["dtype"] = SafetensorsFile.SafetensorsType(t.dtype),
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + len),
            };
            offset += len;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8; // the format pads the header with spaces to 8 bytes
        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            fs.Write(BitConverter.GetBytes((ulong)padded));
            fs.Write(json);
            for (int i = json.Length; i < padded; i++) fs.WriteByte((byte)' ');
            foreach (var (_, t) in tensors)
            {
                using var c = t.device_type == DeviceType.CPU && t.is_contiguous() ? t.alias() : t.cpu().contiguous();
                TensorMemory.WriteTo(c, fs);
            }
            fs.Flush(true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// Writes a model's weights into <paramref name="directory"/> as <c>model.safetensors</c>, or as
    /// <c>model-0000i-of-0000n.safetensors</c> plus <c>model.safetensors.index.json</c> when more than one shard
    /// is needed. Tensors are converted to <paramref name="dtype"/> one at a time.
    /// </summary>
    public static void WriteModel(string directory, IReadOnlyList<(string Name, Tensor Tensor)> weights, ScalarType dtype, long maxShardBytes = long.MaxValue)
    {
        var shards = new List<List<(string, Tensor)>> { new() };
        long current = 0;
        long elementSize = dtype == ScalarType.Float32 ? 4 : 2;
        foreach (var (name, t) in weights)
        {
            long bytes = t.numel() * elementSize;
            if (shards[^1].Count > 0 && current + bytes > maxShardBytes) { shards.Add(new()); current = 0; }
            shards[^1].Add((name, t));
            current += bytes;
        }
        long totalSize = weights.Sum(w => w.Tensor.numel() * elementSize);
        var weightMap = new JsonObject();
        for (int s = 0; s < shards.Count; s++)
        {
            string file = shards.Count == 1 ? "model.safetensors" : $"model-{s + 1:D5}-of-{shards.Count:D5}.safetensors";
            using var scope = NewDisposeScope();
            var converted = shards[s].Select(p => (p.Item1, p.Item2.detach().to(dtype).contiguous())).ToList();
            Write(Path.Combine(directory, file), converted);
            foreach (var (name, _) in shards[s]) weightMap[name] = file;
        }
        string indexPath = Path.Combine(directory, "model.safetensors.index.json");
        if (shards.Count > 1)
        {
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = totalSize }, ["weight_map"] = weightMap };
            File.WriteAllText(indexPath, index.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        }
        else if (File.Exists(indexPath)) File.Delete(indexPath);
    }
}
