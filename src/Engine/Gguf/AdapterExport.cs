using Engine.Adapters;
using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Gguf;

/// <summary>`export --adapter`: a base model plus a PEFT adapter, merged into one GGUF or written as llama.cpp's adapter GGUF.</summary>
public static class AdapterExport
{
    /// <summary>The merged model (W + scaling·B·A per adapted weight) as a GGUF of <paramref name="options"/>' type.</summary>
    public static GgufExportResult Merged(string model, LoraAdapters adapters, string target, GgufExportOptions options)
    {
        var parts = ModelLoader.OpenParts(model);
        using var weights = parts.Weights;
        using var merged = new MergedWeightSource(weights, adapters);
        return GgufExporter.Export(parts with { Weights = merged }, model, GgufExporter.CheckOutputPath(target, options.Force), options);
    }

    /// <summary>
    /// <paramref name="model"/> with <paramref name="adapters"/> folded into its weights: what a merged export stores, so
    /// the reference its validation compares llama.cpp with (that check rounds the source's own parameters).
    /// </summary>
    public static LoadedModel MergedModel(string model, LoraAdapters adapters)
    {
        var loaded = ModelLoader.Load(model, ScalarType.Float32, requireTokenizer: true);
        adapters.CopyTo(loaded.Model).MergeAndDetach();
        return loaded;
    }

    /// <summary>
    /// The GGUF that llama.cpp needs under an adapter for <paramref name="model"/>: the model itself when it is a GGUF
    /// file, <paramref name="baseGguf"/> when given, else an F32 export into a temporary file beside
    /// <paramref name="near"/> that <paramref name="use"/> sees and that is deleted afterwards.
    /// </summary>
    public static T WithBaseGguf<T>(string model, string? baseGguf, string near, Func<string, GgufExportType, T> use)
    {
        if (baseGguf != null) return use(baseGguf, TypeOf(baseGguf));
        if (File.Exists(model) && model.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return use(model, TypeOf(model));
        string dir = Path.GetDirectoryName(Path.GetFullPath(near))!;
        string tmp = Path.Combine(dir, $".engine-base-{Environment.ProcessId}-{Guid.NewGuid():N}.gguf");
        try
        {
            GgufExporter.Export(model, tmp, new GgufExportOptions { Type = GgufExportTypes.Parse("f32") });
            return use(tmp, GgufExportTypes.Parse("f32"));
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>The export type a GGUF file's weights are in, for validation tolerances (its file-type key).</summary>
    static GgufExportType TypeOf(string gguf)
    {
        using var file = GgufFile.Open(gguf);
        if (file.Metadata.TryGetValue(GgufKeys.FileType.Template, out var v))
        {
            uint fileType = Convert.ToUInt32(v.Value, System.Globalization.CultureInfo.InvariantCulture);
            foreach (var name in GgufExportTypes.Names)
                if (GgufExportTypes.FileType(GgufExportTypes.Parse(name)) == fileType) return GgufExportTypes.Parse(name);
        }
        throw new EngineException($"{gguf}: no {GgufKeys.FileType.Template} that Engine exports ({string.Join(", ", GgufExportTypes.Names)}); validation cannot set its tolerances");
    }
}
