using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Models;
using Engine.Tokenization;
using Engine.Util;
using static TorchSharp.torch;

namespace Engine.Training;

/// <summary>What a trainer needs to continue exactly where a checkpoint left off.</summary>
public sealed record TrainerState
{
    public int Step { get; init; }
    public int Epoch { get; init; }
    public int BatchIndex { get; init; }
    public long OptimizerSteps { get; init; }
    public long Seed { get; init; }
    public int ConsecutiveNonFinite { get; init; }
    public int SkippedSteps { get; init; }
    public long TokensSeen { get; init; }
    public string Method { get; init; } = "";
    /// <summary>Examples per global micro-batch (micro-batch × ranks), the unit of <see cref="BatchIndex"/>; 0 in older checkpoints.</summary>
    public int GlobalMicroBatch { get; init; }
    /// <summary>Ranks of the run that wrote the checkpoint (it may be resumed with any number).</summary>
    public int Ranks { get; init; } = 1;
}

/// <summary>
/// <c>OUT/checkpoint-STEP/</c>: the model in HF layout (<c>model/</c>, loadable by generate), the optimizer state
/// (<c>optimizer.safetensors</c>) and <c>trainer_state.json</c>. Each checkpoint is written to a hidden temporary
/// folder and renamed into place, so a crash mid-write never leaves a broken checkpoint-N behind.
/// </summary>
public static class CheckpointStore
{
    public const string StateFile = "trainer_state.json";

    /// <summary>Test hook: when set to a step number, the process dies halfway through writing that checkpoint.</summary>
    public const string CrashHookVariable = "ENGINE_TEST_CRASH_DURING_CHECKPOINT";

    public static string Save(string outputDir, TrainerState state, LlamaForCausalLM model, TextTokenizer? tokenizer, AdamW optimizer)
    {
        string dir = Path.Combine(outputDir, $"checkpoint-{state.Step}");
        AtomicDirectory.Write(dir, tmp =>
        {
            string modelDir = Path.Combine(tmp, "model");
            Directory.CreateDirectory(modelDir);
            ModelLoader.SaveInto(model, tokenizer, modelDir, model.Dtype);
            if (Environment.GetEnvironmentVariable(CrashHookVariable) == state.Step.ToString())
                Environment.FailFast($"test hook: simulated crash while writing checkpoint {state.Step}");
            SafetensorsWriter.Write(Path.Combine(tmp, "optimizer.safetensors"), optimizer.StateTensors().ToList());
            File.WriteAllText(Path.Combine(tmp, StateFile), JsonSerializer.Serialize(state, new JsonSerializerOptions { WriteIndented = true }));
        }, replace: true);
        return dir;
    }

    /// <summary>
    /// Resolves <paramref name="path"/> to a checkpoint: a checkpoint folder itself, or a run folder, in which
    /// case its latest complete checkpoint is used.
    /// </summary>
    public static string Resolve(string path)
    {
        if (File.Exists(Path.Combine(path, StateFile))) return path;
        if (!Directory.Exists(path)) throw new EngineException($"{path}: checkpoint not found");
        var latest = Directory.GetDirectories(path, "checkpoint-*")
            .Select(d => (dir: d, ok: int.TryParse(Path.GetFileName(d)["checkpoint-".Length..], out int s), step: s))
            .Where(c => c.ok && File.Exists(Path.Combine(c.dir, StateFile)))
            .OrderByDescending(c => c.step)
            .FirstOrDefault();
        return latest.dir ?? throw new EngineException($"{path}: no complete checkpoint (checkpoint-N with {StateFile}) found");
    }

    public static TrainerState ReadState(string checkpointDir)
    {
        string file = Path.Combine(checkpointDir, StateFile);
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(file)) ?? throw new EngineException($"{file}: empty trainer state");
        }
        catch (JsonException e) { throw new EngineException($"{file}: invalid trainer state ({e.Message})"); }
        catch (FileNotFoundException) { throw new EngineException($"{file}: not found (incomplete checkpoint?)"); }
    }

    public static string ModelDir(string checkpointDir) => Path.Combine(checkpointDir, "model");

    public static void LoadOptimizer(string checkpointDir, AdamW optimizer, TrainerState state)
    {
        using var source = new SingleSafetensorsSource(Path.Combine(checkpointDir, "optimizer.safetensors"));
        optimizer.LoadState(state.OptimizerSteps, source);
    }

    /// <summary>Removes temporaries left by a crash mid-checkpoint.</summary>
    public static void CleanTemporaries(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return;
        foreach (var d in Directory.GetDirectories(outputDir, ".checkpoint-*.tmp-*")) Directory.Delete(d, true);
    }
}

/// <summary>One safetensors file as a weight source (optimizer state, cached tensors).</summary>
public sealed class SingleSafetensorsSource : IWeightSource
{
    readonly SafetensorsFile _file;
    public SingleSafetensorsSource(string path) { _file = SafetensorsFile.Open(path); }
    public string Description => _file.Path;
    public IReadOnlyCollection<string> Names => _file.Entries.Keys.ToList();
    public long[] Shape(string name) => _file.Entries[name].Shape;
    public Tensor Read(string name) => _file.Read(name);
    public void Dispose() => _file.Dispose();
}
