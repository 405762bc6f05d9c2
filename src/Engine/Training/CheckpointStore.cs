using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Adapters;
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
    /// <summary>Set when a run starts and kept through its resumes: checkpoint retention deletes only its own run's checkpoints.</summary>
    public string? RunId { get; init; }
    /// <summary>The best value of --metric-for-best-model so far, and the checkpoint folder's name that had it.</summary>
    public double? BestMetric { get; init; }
    public string? BestCheckpoint { get; init; }
}

/// <summary>A <c>checkpoint-STEP</c> folder of a run folder, with its trainer state.</summary>
public sealed record CheckpointFolder(string Dir, int Step, TrainerState State)
{
    public string Name => Path.GetFileName(Dir);
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

    public const string Prefix = "checkpoint-";

    /// <param name="adapters">a LoRA run's adapters: the checkpoint then holds them in PEFT's layout (beside the optimizer
    /// state) instead of the model, whose base <paramref name="baseModel"/> stays frozen</param>
    public static string Save(string outputDir, TrainerState state, LlamaForCausalLM model, TextTokenizer? tokenizer, AdamW optimizer,
        LoraAdapters? adapters = null, string baseModel = "")
    {
        string dir = Path.Combine(outputDir, Prefix + state.Step);
        AtomicDirectory.Write(dir, tmp =>
        {
            if (adapters != null) PeftAdapterFolder.WriteInto(tmp, adapters, baseModel, model.Dtype);
            else
            {
                string modelDir = Path.Combine(tmp, "model");
                Directory.CreateDirectory(modelDir);
                ModelLoader.SaveInto(model, tokenizer, modelDir, model.Dtype);
            }
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
        var latest = Directory.GetDirectories(path, Prefix + "*")
            .Select(d => (dir: d, step: StepOf(d)))
            .Where(c => c.step is not null && File.Exists(Path.Combine(c.dir, StateFile)))
            .OrderByDescending(c => c.step)
            .FirstOrDefault();
        return latest.dir ?? throw new EngineException($"{path}: no complete checkpoint (checkpoint-N with {StateFile}) found");
    }

    /// <summary>The step of a folder named checkpoint-STEP; null for any other name.</summary>
    public static int? StepOf(string dir)
    {
        string name = Path.GetFileName(dir.TrimEnd('/'));
        return name.StartsWith(Prefix, StringComparison.Ordinal) && int.TryParse(name.AsSpan(Prefix.Length), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out int step) ? step : null;
    }

    /// <summary>
    /// The checkpoints Engine wrote in <paramref name="outputDir"/>, oldest step first: folders named checkpoint-STEP
    /// whose trainer state is readable and names that step. Anything else (a user's folder, a half-deleted one) is not listed.
    /// </summary>
    public static IReadOnlyList<CheckpointFolder> List(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return Array.Empty<CheckpointFolder>();
        var found = new List<CheckpointFolder>();
        foreach (var dir in Directory.GetDirectories(outputDir, Prefix + "*"))
        {
            if (StepOf(dir) is not int step || !File.Exists(Path.Combine(dir, StateFile))) continue;
            TrainerState state;
            try { state = ReadState(dir); }
            catch (EngineException) { continue; }
            if (state.Step == step) found.Add(new CheckpointFolder(dir, step, state));
        }
        return found.OrderBy(c => c.Step).ToList();
    }

    /// <summary>
    /// Deletes a checkpoint by first renaming it to a hidden temporary, so an interrupted delete leaves a
    /// temporary (removed at the next start), never a checkpoint-STEP with missing files.
    /// </summary>
    public static void Delete(string checkpointDir)
    {
        string parent = Path.GetDirectoryName(Path.GetFullPath(checkpointDir.TrimEnd('/')))!;
        string doomed = Path.Combine(parent, $".{Path.GetFileName(checkpointDir.TrimEnd('/'))}.tmp-deleting-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.Move(checkpointDir, doomed);
        Directory.Delete(doomed, true);
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

    /// <summary>A LoRA checkpoint's adapter attached to <paramref name="model"/>; its shape must be the run's.</summary>
    public static LoraAdapters LoadAdapters(string checkpointDir, LlamaForCausalLM model, LoraSettings run)
    {
        if (!PeftAdapterFolder.IsAdapterFolder(checkpointDir))
            throw new EngineException($"{checkpointDir}: not a LoRA checkpoint (no {PeftAdapterFolder.ConfigFile}); resume a full fine-tuning run without --use-peft");
        var adapters = PeftAdapterFolder.Load(model, checkpointDir);
        var saved = adapters.Settings;
        var expected = LoraAdapters.Targets(model, run).Select(t => t.Module).ToHashSet();
        if (saved.Rank != run.Rank || saved.Alpha != run.Alpha || saved.UseRslora != run.UseRslora || !expected.SetEquals(adapters.Layers.Select(l => l.Module)))
        {
            adapters.Dispose();
            throw new EngineException($"{checkpointDir}: the checkpoint's adapter (r={saved.Rank}, alpha={saved.Alpha}, rslora={saved.UseRslora}, " +
                $"{string.Join(",", saved.Targets)}) differs from this run's --lora-* options");
        }
        return adapters;
    }

    public static void LoadOptimizer(string checkpointDir, AdamW optimizer, TrainerState state)
    {
        using var source = new SingleSafetensorsSource(Path.Combine(checkpointDir, "optimizer.safetensors"));
        optimizer.LoadState(state.OptimizerSteps, source);
    }

    /// <summary>Removes temporaries left by a crash mid-checkpoint.</summary>
    public static void CleanTemporaries(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return;
        foreach (var d in Directory.GetDirectories(outputDir, $".{Prefix}*.tmp-*")) Directory.Delete(d, true);
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
