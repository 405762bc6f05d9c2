using Engine.Adapters;
using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Gguf;

/// <summary>
/// llama.cpp's LoRA adapter GGUF (what its convert_lora_to_gguf.py writes): general.type = adapter, adapter.type = lora,
/// adapter.lora.alpha, and per adapted weight W the tensors "W.lora_a" (A as stored, ggml dims [in, r]) and "W.lora_b"
/// (B, dims [r, out]) under the base model's GGUF tensor names, B's rows permuted like the base's q/k rows.
/// llama.cpp applies an adapter as W + (alpha / r)·B·A at run time on top of the base GGUF.
/// </summary>
public static class GgufLoraAdapter
{
    /// <param name="beforeRename">runs on the complete temporary file before it is renamed into place (validation)</param>
    public static void Write(string target, LoraAdapters adapters, LlamaConfig config, string name, bool force, Action<string>? beforeRename = null)
    {
        target = GgufExporter.CheckOutputPath(target, force);
        var arch = GgufArchitectures.For(config.Family);
        var meta = new GgufMetadataBuilder(arch.Name)
            .Add(GgufKeys.Architecture, arch.Name)
            .Add(GgufKeys.FileKind, "adapter")
            .Add(GgufKeys.ModelName, name)
            .Add(GgufKeys.AdapterType, "lora")
            // rsLoRA's alpha/√r is written as the alpha that gives the same scale under llama.cpp's alpha/r.
            .Add(GgufKeys.AdapterLoraAlpha, (float)(adapters.Settings.Scaling * adapters.Settings.Rank));
        var writer = new GgufWriter();
        foreach (var (key, value) in meta.Entries) writer.Add(key, value);
        var data = new List<Tensor>();
        try
        {
            foreach (var (module, layer) in adapters.Layers)
            {
                string hf = module + ".weight";
                string gguf = arch.ToGguf(hf) ?? throw new EngineException($"{module}: no llama.cpp tensor name for {hf} in the {arch.Name} architecture");
                var a = layer.A.detach().to(ScalarType.Float32).contiguous();
                var b = layer.B.detach().to(ScalarType.Float32).contiguous();
                if (arch.InterleaveHeads(gguf, config) is int heads) b = RopePermutation.ToInterleaved(b, heads);
                data.Add(a); data.Add(b);
                writer.AddTensor(gguf + ".lora_a", new[] { a.shape[1], a.shape[0] }, GgmlType.F32, s => TensorMemory.WriteTo(a, s));
                writer.AddTensor(gguf + ".lora_b", new[] { b.shape[1], b.shape[0] }, GgmlType.F32, s => TensorMemory.WriteTo(b, s));
            }
            AtomicDirectory.WriteFile(target, tmp =>
            {
                using (var f = File.Create(tmp)) writer.Write(f);
                beforeRename?.Invoke(tmp);
            });
        }
        finally
        {
            foreach (var t in data) t.Dispose();
        }
    }
}
