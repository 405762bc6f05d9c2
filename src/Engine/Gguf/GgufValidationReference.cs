using Engine.Gguf.Quantization;
using Engine.Models;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Gguf;

/// <summary>
/// What a correct export stores, as Engine computes it: each of the source model's tensors put through the ggml
/// type the exported file holds it in (encoded and decoded by Engine's codecs, which are byte-identical to ggml's
/// reference quantizers). It is built from the source rather than read back from the file on purpose: a file whose
/// tensors are misplaced (rows swapped, q/k rows permuted the wrong way, a scale or a norm lost) must differ from it,
/// even where Engine's own GGUF reader would misread that file in the same way as it was written.
/// </summary>
public static class GgufStoredWeights
{
    /// <summary>A copy of <paramref name="source"/> whose weights are rounded to the file's tensor types.</summary>
    public static LlamaForCausalLM Build(LlamaForCausalLM source, string exportedPath, ScalarType dtype = ScalarType.Float32) =>
        Build(source, TensorTypes(exportedPath), exportedPath, dtype);

    /// <param name="types">the file's tensor types (<see cref="TensorTypes"/>)</param>
    public static LlamaForCausalLM Build(LlamaForCausalLM source, IReadOnlyDictionary<string, GgmlType> types, string exportedPath, ScalarType dtype)
    {
        using var weights = new RoundTripWeights(source, types, exportedPath);
        return ModelLoader.Build(source.Config, weights, dtype);
    }

    /// <summary>The stored type of every tensor of the file, by the model's (Hugging Face) parameter name.</summary>
    public static IReadOnlyDictionary<string, GgmlType> TensorTypes(string exportedPath)
    {
        var parts = ModelLoader.OpenParts(exportedPath);
        using var weights = parts.Weights;
        if (weights is not GgufWeightSource gguf) throw new EngineException($"{exportedPath}: not a GGUF file");
        return gguf.Names.ToDictionary(n => n, gguf.TypeOf, StringComparer.Ordinal);
    }

    sealed class RoundTripWeights(LlamaForCausalLM source, IReadOnlyDictionary<string, GgmlType> types, string file) : IWeightSource
    {
        readonly Dictionary<string, Tensor> _parameters = source.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

        public string Description => $"{file} (source weights in the file's types)";
        public IReadOnlyCollection<string> Names => _parameters.Keys;
        public long[] Shape(string name) => _parameters[name].shape;

        public unsafe Tensor Read(string name)
        {
            if (!types.TryGetValue(name, out var type)) throw new EngineException($"{file}: no tensor holds the model's '{name}'");
            using var scope = NewDisposeScope();
            var values = _parameters[name].detach().to(ScalarType.Float32).contiguous().clone();
            if (type != GgmlType.F32)
            {
                long rowLength = values.shape[^1];
                long rows = values.numel() / Math.Max(1, rowLength);
                if (!GgmlTypes.FitsRow(type, rowLength)) throw new EngineException($"{file}: '{name}' is stored as {GgmlTypes.Name(type)}, whose blocks do not fit rows of {rowLength}");
                using var buffer = new NativeBuffer(rows * GgmlTypes.RowBytes(type, rowLength));
                float* data = (float*)TensorMemory.DataPointer(values);
                GgmlCodec.EncodeRows(type, data, buffer.Pointer, rows, rowLength);
                GgmlCodec.DecodeRows(type, buffer.Pointer, data, rows, rowLength);
            }
            return values.MoveToOuterDisposeScope();
        }

        public void Dispose() { }
    }
}
