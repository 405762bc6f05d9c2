using Engine.Data;
using Engine.Distributed;
using Engine.Kernels;
using Engine.Methods;
using Engine.Models;
using static TorchSharp.torch;

namespace Engine.Training;

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

    public Tensor Sums(ReferenceQuery query, bool eval)
    {
        using var noGrad = no_grad();
        var s = SequenceScorer.Score(_model, query.Sequences, _mode);
        s.TokenCount.Dispose();
        s.LogitSum.Dispose();
        return s.LogpSum;
    }

    public void Dispose() => _model.Dispose();
}

/// <summary>
/// Reference log-probs computed once, before training, by asking the method which sequences of each batch it will
/// need (<see cref="AlignmentMethod.ReferenceQueries"/>), and stored beside the run
/// (<c>OUT/reference-logps-KEY.safetensors</c>, <see cref="ReferenceCacheKey"/>) as sequence key → Σ log π_ref.
/// Training then runs no reference forward and holds no reference weights. On a data-parallel run each rank scores its
/// shard of the batches, the sums are gathered on every rank, and rank 0 alone reads and writes the file.
/// </summary>
public sealed class CachedReference : IReferenceLogps
{
    readonly Dictionary<long, float> _train, _eval;
    /// <summary>The cache file, or null when the cache lives in memory only (measurements).</summary>
    public string? Path { get; }
    public bool LoadedFromDisk { get; }

    CachedReference(Dictionary<long, float> train, Dictionary<long, float> eval, string? path, bool fromDisk)
    {
        _train = train; _eval = eval; Path = path; LoadedFromDisk = fromDisk;
    }

    public Tensor Sums(ReferenceQuery query, bool eval)
    {
        var store = eval ? _eval : _train;
        var values = new float[query.Keys.Length];
        for (int i = 0; i < values.Length; i++)
            if (!store.TryGetValue(query.Keys[i], out values[i]))
                throw new InvalidOperationException($"reference cache {Path ?? "(in memory)"} has no entry for sequence key {query.Keys[i]:x}");
        return tensor(values);
    }

    public void Dispose() { }

    /// <summary>
    /// Loads the cache for <paramref name="key"/> from <paramref name="directory"/>, or computes it with the model that
    /// <paramref name="loadReference"/> returns (disposed afterwards unless it is the policy itself). A null directory
    /// keeps the cache in memory only.
    /// </summary>
    public static CachedReference LoadOrCompute(string? directory, string key, Func<(LlamaForCausalLM Model, bool Owned)> loadReference,
        AlignmentMethod method, ObjectiveOptions options, IBatchSource<ITrainBatch> train, IBatchSource<ITrainBatch>? eval,
        LogProbMode mode, Action<string>? report, ICommunicator? ranks = null)
    {
        ranks ??= SingleProcess.Instance;
        string? path = directory is null ? null : System.IO.Path.Combine(directory, $"reference-logps-{key}.safetensors");
        var loaded = ranks.IsRoot && path != null && File.Exists(path) ? TryLoad(path, key, train, eval) : null;
        if (ranks.Size > 1)
        {
            var found = new byte[] { (byte)(loaded is null ? 0 : 1) };
            ranks.Broadcast(found, root: 0);
            if (found[0] == 1) loaded = (Share(ranks, loaded?.Train), Share(ranks, loaded?.Eval));
        }
        if (loaded is { } cached)
        {
            report?.Invoke($"reference log-probs: cached ({path})");
            return new CachedReference(cached.Train, cached.Eval, path, true);
        }
        var (model, owned) = loadReference();
        try
        {
            report?.Invoke("reference log-probs: one pre-pass over the data (then no reference model while training)" +
                (ranks.Size > 1 ? $", split over {ranks.Size} ranks" : ""));
            var trainSums = Gather(ranks, Compute(model, method, options, train, mode));
            var evalSums = eval is null ? new Dictionary<long, float>() : Gather(ranks, Compute(model, method, options, eval, mode));
            if (path != null && ranks.IsRoot) Save(path, key, trainSums, train.Rows, evalSums, eval?.Rows ?? 0);
            return new CachedReference(trainSums, evalSums, path, false);
        }
        finally
        {
            if (owned) model.Dispose();
        }
    }

    static Dictionary<long, float> Compute(LlamaForCausalLM model, AlignmentMethod method, ObjectiveOptions options,
        IBatchSource<ITrainBatch> data, LogProbMode mode)
    {
        using var noGrad = no_grad();
        var sums = new Dictionary<long, float>();
        // One epoch visits every example; later epochs reuse the same keys (pairs by index, KTO's fixed batches).
        foreach (var batch in data.Batches(1, DataPosition.Start))
        {
            using (batch)
            using (var scope = NewDisposeScope())
                foreach (var query in method.ReferenceQueries(batch, options))
                {
                    var values = SequenceScorer.Score(model, query.Sequences, mode).LogpSum.data<float>().ToArray();
                    for (int i = 0; i < values.Length; i++) sums[query.Keys[i]] = values[i];
                }
        }
        return sums;
    }

    /// <summary>Every rank's part of the pre-pass (each scored its shard of the batches), on every rank.</summary>
    static Dictionary<long, float> Gather(ICommunicator ranks, Dictionary<long, float> mine)
    {
        if (ranks.Size == 1) return mine;
        var keys = ranks.AllGatherConcat(mine.Keys.ToArray());
        var values = ranks.AllGatherConcat(mine.Values.ToArray());
        var all = new Dictionary<long, float>(keys.Length);
        for (int i = 0; i < keys.Length; i++) all[keys[i]] = values[i];
        return all;
    }

    /// <summary>Rank 0's loaded sums on every rank.</summary>
    static Dictionary<long, float> Share(ICommunicator ranks, Dictionary<long, float>? fromRoot)
    {
        var keys = ranks.BroadcastArray(fromRoot?.Keys.ToArray());
        var values = ranks.BroadcastArray(fromRoot?.Values.ToArray());
        var all = new Dictionary<long, float>(keys.Length);
        for (int i = 0; i < keys.Length; i++) all[keys[i]] = values[i];
        return all;
    }

    static void Save(string path, string key, Dictionary<long, float> train, int trainRows, Dictionary<long, float> eval, int evalRows)
    {
        var tensors = new List<(string, Tensor)>
        {
            ("train.keys", tensor(train.Keys.ToArray())), ("train.values", tensor(train.Values.ToArray())), ("train.rows", tensor(new long[] { trainRows })),
            ("eval.keys", tensor(eval.Keys.ToArray())), ("eval.values", tensor(eval.Values.ToArray())), ("eval.rows", tensor(new long[] { evalRows })),
        };
        SafetensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["key"] = key });
        foreach (var (_, t) in tensors) t.Dispose();
    }

    static (Dictionary<long, float> Train, Dictionary<long, float> Eval)? TryLoad(string path, string key, IBatchSource<ITrainBatch> train, IBatchSource<ITrainBatch>? eval)
    {
        using var file = SafetensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("key", out var stored) || stored != key) return null;
        (Dictionary<long, float> Sums, long Rows) Read(string split)
        {
            using var keys = file.Read($"{split}.keys");
            using var values = file.Read($"{split}.values");
            using var rows = file.Read($"{split}.rows");
            var k = keys.data<long>().ToArray();
            var v = values.data<float>().ToArray();
            var sums = new Dictionary<long, float>(k.Length);
            for (int i = 0; i < k.Length; i++) sums[k[i]] = v[i];
            return (sums, rows.data<long>()[0]);
        }
        var (trainSums, trainRows) = Read("train");
        var (evalSums, evalRows) = Read("eval");
        if (trainRows != train.Rows || (eval != null && evalRows != eval.Rows)) return null;
        return (trainSums, evalSums);
    }
}
