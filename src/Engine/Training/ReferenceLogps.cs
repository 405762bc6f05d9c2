using System.Security.Cryptography;
using System.Text;
using Engine.Data;
using Engine.Kernels;
using Engine.Models;
using Engine.Objectives;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>
/// Where reference log-probs (Σ log π_ref over completion tokens) come from during training and eval.
/// </summary>
public interface IReferenceLogps : IDisposable
{
    (Tensor Chosen, Tensor Rejected) Paired(PairedBatch batch, bool eval);
    Tensor Completions(UnpairedBatch batch, bool eval);
    /// <summary>Reference sums of the batch's mismatched (KL) pairs.</summary>
    Tensor Mismatched(UnpairedBatch batch, bool eval);
}

/// <summary>A frozen reference model kept in memory and run on every batch (TRL's default).</summary>
public sealed class ResidentReference : IReferenceLogps
{
    readonly LlamaForCausalLM _model;
    readonly LogProbMode _mode;

    public ResidentReference(LlamaForCausalLM model, LogProbMode mode)
    {
        _model = model;
        _mode = mode;
        foreach (var p in _model.parameters()) p.requires_grad = false;
    }

    Tensor Sums(SequenceBatch batch)
    {
        using var noGrad = no_grad();
        var s = SequenceScorer.Score(_model, batch, _mode);
        s.TokenCount.Dispose();
        s.LogitSum.Dispose();
        return s.LogpSum;
    }

    public (Tensor Chosen, Tensor Rejected) Paired(PairedBatch batch, bool eval)
    {
        using var all = Sums(batch.Sequences);
        return (all.narrow(0, 0, batch.Pairs).clone(), all.narrow(0, batch.Pairs, batch.Pairs).clone());
    }

    public Tensor Completions(UnpairedBatch batch, bool eval) => Sums(batch.Sequences);
    public Tensor Mismatched(UnpairedBatch batch, bool eval) => Sums(batch.MismatchedSequences);
    public void Dispose() => _model.Dispose();
}

/// <summary>
/// Reference log-probs computed once, before training, and stored beside the run
/// (<c>OUT/reference-logps-HASH.safetensors</c>), keyed by a hash of the reference model, the data and every
/// setting that changes tokens or batches. Training then runs no reference forward and holds no reference weights.
/// </summary>
public sealed class CachedReference : IReferenceLogps
{
    /// <summary>Per split: chosen/rejected by pair index, or completion by row index plus the mismatched pairs.</summary>
    sealed class Split
    {
        public float[] Chosen = Array.Empty<float>(), Rejected = Array.Empty<float>(), Completion = Array.Empty<float>();
        public Dictionary<long, float> Mismatched = new();
        public int Rows;
    }

    readonly Split _train, _eval;
    public string Path { get; }
    public bool LoadedFromDisk { get; }

    CachedReference(Split train, Split eval, string path, bool fromDisk)
    {
        _train = train; _eval = eval; Path = path; LoadedFromDisk = fromDisk;
    }

    static long PairKey(int promptRow, int completionRow, int rows) => (long)promptRow * rows + completionRow;

    public (Tensor Chosen, Tensor Rejected) Paired(PairedBatch batch, bool eval)
    {
        var s = eval ? _eval : _train;
        return (tensor(batch.RowIndices.Select(i => s.Chosen[i]).ToArray()), tensor(batch.RowIndices.Select(i => s.Rejected[i]).ToArray()));
    }

    public Tensor Completions(UnpairedBatch batch, bool eval)
    {
        var s = eval ? _eval : _train;
        return tensor(batch.RowIndices.Select(i => s.Completion[i]).ToArray());
    }

    public Tensor Mismatched(UnpairedBatch batch, bool eval)
    {
        var s = eval ? _eval : _train;
        var rows = batch.RowIndices;
        int m = rows.Count;
        var values = new float[m];
        for (int i = 0; i < m; i++)
        {
            long key = PairKey(rows[i], rows[(i - 1 + m) % m], s.Rows);
            if (!s.Mismatched.TryGetValue(key, out values[i]))
                throw new InvalidOperationException($"reference cache {Path} has no entry for mismatched pair ({rows[i]}, {rows[(i - 1 + m) % m]})");
        }
        return tensor(values);
    }

    public void Dispose() { }

    /// <summary>
    /// Loads the cache for <paramref name="key"/> from <paramref name="directory"/>, or computes it with the
    /// model that <paramref name="loadReference"/> returns (disposed afterwards unless it is the policy itself).
    /// </summary>
    public static CachedReference LoadOrCompute(string directory, string key, Func<(LlamaForCausalLM Model, bool Owned)> loadReference,
        RunBatches train, RunBatches? eval, LogProbMode mode, Action<string>? report)
    {
        string path = System.IO.Path.Combine(directory, $"reference-logps-{key}.safetensors");
        if (File.Exists(path))
        {
            var loaded = TryLoad(path, key, train, eval);
            if (loaded != null) { report?.Invoke($"reference log-probs: cached ({path})"); return loaded; }
        }
        var (model, owned) = loadReference();
        try
        {
            report?.Invoke("reference log-probs: one pre-pass over the data (then no reference model while training)");
            var trainSplit = Compute(model, train, mode);
            var evalSplit = eval is null ? new Split() : Compute(model, eval, mode);
            Save(path, key, trainSplit, evalSplit);
            return new CachedReference(trainSplit, evalSplit, path, false);
        }
        finally
        {
            if (owned) model.Dispose();
        }
    }

    static Split Compute(LlamaForCausalLM model, RunBatches data, LogProbMode mode)
    {
        using var noGrad = no_grad();
        var s = new Split { Rows = data.Rows };
        if (data.Paired is { } paired)
        {
            s.Chosen = new float[data.Rows];
            s.Rejected = new float[data.Rows];
            foreach (var batch in paired.Batches(1))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    var sums = SequenceScorer.Score(model, batch.Sequences, mode).LogpSum.data<float>().ToArray();
                    for (int i = 0; i < batch.Pairs; i++)
                    {
                        s.Chosen[batch.RowIndices[i]] = sums[i];
                        s.Rejected[batch.RowIndices[i]] = sums[batch.Pairs + i];
                    }
                }
            }
        }
        else if (data.Unpaired is { } unpaired)
        {
            s.Completion = new float[data.Rows];
            foreach (var batch in unpaired.Batches(1))
            {
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    var main = SequenceScorer.Score(model, batch.Sequences, mode).LogpSum.data<float>().ToArray();
                    var kl = SequenceScorer.Score(model, batch.MismatchedSequences, mode).LogpSum.data<float>().ToArray();
                    var rows = batch.RowIndices;
                    int m = rows.Count;
                    for (int i = 0; i < m; i++)
                    {
                        s.Completion[rows[i]] = main[i];
                        s.Mismatched[PairKey(rows[i], rows[(i - 1 + m) % m], data.Rows)] = kl[i];
                    }
                }
            }
        }
        return s;
    }

    static void Save(string path, string key, Split train, Split eval)
    {
        var tensors = new List<(string, Tensor)>();
        void AddSplit(string prefix, Split s)
        {
            tensors.Add(($"{prefix}.chosen", tensor(s.Chosen)));
            tensors.Add(($"{prefix}.rejected", tensor(s.Rejected)));
            tensors.Add(($"{prefix}.completion", tensor(s.Completion)));
            tensors.Add(($"{prefix}.mismatched_keys", tensor(s.Mismatched.Keys.ToArray())));
            tensors.Add(($"{prefix}.mismatched_values", tensor(s.Mismatched.Values.ToArray())));
            tensors.Add(($"{prefix}.rows", tensor(new long[] { s.Rows })));
        }
        AddSplit("train", train);
        AddSplit("eval", eval);
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["key"] = key });
        foreach (var (_, t) in tensors) t.Dispose();
    }

    static CachedReference? TryLoad(string path, string key, RunBatches train, RunBatches? eval)
    {
        using var file = SafetensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("key", out var stored) || stored != key) return null;
        Split Read(string prefix)
        {
            float[] F(string n) { using var t = file.Read($"{prefix}.{n}"); return t.data<float>().ToArray(); }
            using var keys = file.Read($"{prefix}.mismatched_keys");
            using var rows = file.Read($"{prefix}.rows");
            var values = F("mismatched_values");
            var k = keys.data<long>().ToArray();
            var s = new Split { Chosen = F("chosen"), Rejected = F("rejected"), Completion = F("completion"), Rows = (int)rows.data<long>()[0] };
            for (int i = 0; i < k.Length; i++) s.Mismatched[k[i]] = values[i];
            return s;
        }
        var trainSplit = Read("train");
        var evalSplit = Read("eval");
        if (trainSplit.Rows != train.Rows || (eval != null && evalSplit.Rows != eval.Rows)) return null;
        return new CachedReference(trainSplit, evalSplit, path, true);
    }

    /// <summary>
    /// The cache key: the reference model's files, the data files, and every setting that changes the tokens,
    /// the batches or the mismatched pairs.
    /// </summary>
    public static string Key(string referenceModelPath, IEnumerable<string> dataFiles, string settings)
    {
        using var sha = SHA256.Create();
        void AddFile(string file)
        {
            var name = Encoding.UTF8.GetBytes(System.IO.Path.GetFileName(file) + "\n");
            sha.TransformBlock(name, 0, name.Length, null, 0);
            using var fs = File.OpenRead(file);
            var buffer = new byte[1 << 20];
            int n;
            while ((n = fs.Read(buffer, 0, buffer.Length)) > 0) sha.TransformBlock(buffer, 0, n, null, 0);
        }
        var modelFiles = Directory.Exists(referenceModelPath)
            ? Directory.GetFiles(referenceModelPath).Where(f => f.EndsWith(".safetensors") || f.EndsWith(".json")).OrderBy(f => f, StringComparer.Ordinal)
            : new[] { referenceModelPath }.AsEnumerable();
        foreach (var f in modelFiles) AddFile(f);
        foreach (var f in dataFiles) AddFile(f);
        var s = Encoding.UTF8.GetBytes(settings);
        sha.TransformFinalBlock(s, 0, s.Length);
        return Convert.ToHexString(sha.Hash!)[..16].ToLowerInvariant();
    }
}
