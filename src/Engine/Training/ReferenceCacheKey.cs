using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Engine.Data;
using Engine.Kernels;
using Engine.Util;

namespace Engine.Training;

/// <summary>
/// Everything that decides a run's cached reference log-probs, declared field by field: the reference model's files
/// (weights, config and every tokenizer file), the data files' contents, and every setting that changes the tokens,
/// the batches, the mismatched pairs or the arithmetic. <see cref="Hash"/> covers every field, so a new input is a
/// new field here and cannot be forgotten in a hand-built string.
/// </summary>
public sealed record ReferenceCacheKey
{
    /// <summary>Bumped when the cache file's layout, the keying of sequences or the tokenization of rows changes
    /// (3: prompt + completion tokenized together, no BOS/EOS added to chat-template rows).</summary>
    public const int FormatVersion = 3;

    /// <summary>A model folder (every file in it is hashed) or a single model file.</summary>
    public required string ReferenceModel { get; init; }
    public required IReadOnlyList<string> DataFiles { get; init; }
    public required string Method { get; init; }
    /// <summary>Options that change which sequences are scored (KTO without z0 scores no mismatched pairs).</summary>
    public required bool ReferenceFree { get; init; }
    public required bool NoZ0 { get; init; }
    /// <summary>Examples per global micro-batch (micro-batch × ranks): KTO's mismatched pairs are formed over it.</summary>
    public required int MicroBatch { get; init; }
    /// <summary>Global micro-batches per epoch of the training and eval splits: a last partial batch too small to give every
    /// rank its share is dropped, so a different number of ranks can change which batches exist.</summary>
    public required int TrainBatches { get; init; }
    public required int EvalBatches { get; init; }
    public required long Seed { get; init; }
    public required int MaxLength { get; init; }
    public required int? MaxPromptLength { get; init; }
    public required TruncationMode TruncationMode { get; init; }
    public required double EvalFraction { get; init; }
    public required Training.Precision Precision { get; init; }
    public required LogProbMode Head { get; init; }

    public static ReferenceCacheKey For(TrainingOptions o, IReadOnlyList<string> dataFiles, int ranks = 1, int trainBatches = 0, int evalBatches = 0) => new()
    {
        ReferenceModel = o.Step.ReferenceModel ?? o.Step.Model,
        DataFiles = dataFiles,
        Method = o.Step.Method.Name,
        ReferenceFree = o.Step.Objective.ReferenceFree,
        NoZ0 = o.Step.Objective.NoZ0,
        MicroBatch = o.Step.MicroBatch * ranks,
        TrainBatches = trainBatches,
        EvalBatches = evalBatches,
        Seed = o.Seed,
        MaxLength = o.Step.MaxLength,
        MaxPromptLength = o.Step.Tokenization.MaxPromptLength,
        TruncationMode = o.Step.TruncationMode,
        EvalFraction = o.EvalFraction,
        Precision = o.Step.Precision,
        Head = o.Step.Head,
    };

    /// <summary>The files whose bytes enter the hash, in a fixed order.</summary>
    public IEnumerable<string> Files()
    {
        var model = Directory.Exists(ReferenceModel)
            ? Directory.GetFiles(ReferenceModel).Where(f => !Path.GetFileName(f).StartsWith('.')).OrderBy(f => f, StringComparer.Ordinal)
            : new[] { ReferenceModel }.AsEnumerable();
        return model.Concat(DataFiles);
    }

    /// <summary>16 hex digits of SHA-256 over the format version, every setting and every file's name and bytes.</summary>
    public string Hash()
    {
        using var sha = SHA256.Create();
        void Add(byte[] bytes) => sha.TransformBlock(bytes, 0, bytes.Length, null, 0);
        var settings = new SortedDictionary<string, string?>(StringComparer.Ordinal)
        {
            ["format"] = FormatVersion.ToString(), ["method"] = Method, ["reference_free"] = ReferenceFree.ToString(),
            ["no_z0"] = NoZ0.ToString(), ["micro_batch"] = MicroBatch.ToString(), ["train_batches"] = TrainBatches.ToString(), ["eval_batches"] = EvalBatches.ToString(), ["seed"] = Seed.ToString(),
            ["max_length"] = MaxLength.ToString(), ["max_prompt_length"] = MaxPromptLength?.ToString(),
            ["truncation_mode"] = Spelling.Of(TruncationMode), ["eval_fraction"] = EvalFraction.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            ["precision"] = Spelling.Of(Precision), ["head"] = Spelling.Of(Head),
        };
        Add(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(settings)));
        var buffer = new byte[1 << 20];
        foreach (var file in Files())
        {
            Add(Encoding.UTF8.GetBytes("\n" + Path.GetFileName(file) + "\n"));
            using var fs = File.OpenRead(file);
            int n;
            while ((n = fs.Read(buffer, 0, buffer.Length)) > 0) sha.TransformBlock(buffer, 0, n, null, 0);
        }
        sha.TransformFinalBlock(Array.Empty<byte>(), 0, 0);
        return Convert.ToHexString(sha.Hash!)[..16].ToLowerInvariant();
    }
}
