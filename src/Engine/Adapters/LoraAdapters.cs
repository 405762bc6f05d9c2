using Engine.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Engine.Adapters;

/// <summary>
/// The LoRA adapters attached to one model: found by module name (any family whose linear layers carry the HF names),
/// frozen base, one switch for all. Parameters are named as PEFT saves them
/// (<c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c>).
/// </summary>
public sealed class LoraAdapters : IDisposable
{
    public const string PeftPrefix = "base_model.model.";

    public LoraSettings Settings { get; }
    /// <summary>HF module path (<c>model.layers.0.self_attn.q_proj</c>) → its adapter, in model order.</summary>
    public IReadOnlyList<(string Module, LoraLayer Layer)> Layers { get; }
    readonly AdapterSwitch _switch;

    LoraAdapters(LoraSettings settings, List<(string, LoraLayer)> layers, AdapterSwitch sw)
    {
        Settings = settings; Layers = layers; _switch = sw;
    }

    public bool Enabled { get => _switch.Enabled; set => _switch.Enabled = value; }

    /// <summary>The adapters switched off until the returned scope ends (the reference forward).</summary>
    public IDisposable Disabled() => new SwitchScope(_switch);

    /// <summary>The model's linear layers that <paramref name="settings"/> targets, by HF module path.</summary>
    public static IReadOnlyList<(string Module, Projection Layer)> Targets(LlamaForCausalLM model, LoraSettings settings) =>
        model.named_modules()
            .Where(m => m.module is Projection && m.name != "lm_head" && settings.IsTarget(m.name[(m.name.LastIndexOf('.') + 1)..]))
            .Select(m => (m.name, (Projection)m.module))
            .ToList();

    /// <summary>
    /// Attaches fresh adapters (PEFT's initialisation from <paramref name="seed"/>, fp32) to the targeted layers and freezes
    /// every base parameter.
    /// </summary>
    /// <param name="only">when set, only the module paths it accepts (an imported adapter's layers)</param>
    public static LoraAdapters Attach(LlamaForCausalLM model, LoraSettings settings, long seed, Func<string, bool>? only = null)
    {
        settings.Validate();
        if (!settings.Enabled) throw new ArgumentException("LoRA is not enabled in these settings", nameof(settings));
        var targets = Targets(model, settings).Where(t => only?.Invoke(t.Module) ?? true).ToList();
        if (targets.Count == 0) throw new EngineException($"--lora-target-modules {string.Join(",", settings.Targets)} matches no linear layer of the model");
        if (targets.Any(t => t.Layer.Adapter != null)) throw new EngineException("the model already has adapters attached");
        var gen = new Generator((ulong)seed);
        var sw = new AdapterSwitch();
        var layers = new List<(string, LoraLayer)>();
        foreach (var (name, proj) in targets)
        {
            var (a, b) = LoraLayer.Initial(proj.weight.shape[1], proj.weight.shape[0], settings.Rank, gen);
            var layer = new LoraLayer(proj, a.to(proj.weight.dtype), b.to(proj.weight.dtype), settings.Scaling, settings.Dropout, sw);
            a.Dispose(); b.Dispose();
            proj.Adapter = layer;
            layers.Add((name, layer));
        }
        Freeze(model);
        return new LoraAdapters(settings, layers, sw);
    }

    /// <summary>No base parameter takes a gradient (again after a dtype cast, which replaces the parameters).</summary>
    public static void Freeze(LlamaForCausalLM model)
    {
        foreach (var p in model.parameters()) p.requires_grad = false;
    }

    /// <summary>The same adapters (settings and weights) attached to another model of the same shape, in its dtype.</summary>
    public LoraAdapters CopyTo(LlamaForCausalLM model)
    {
        var modules = Layers.Select(l => l.Module).ToHashSet();
        var copy = Attach(model, Settings, seed: 0, only: modules.Contains);
        var byKey = NamedParameters().ToDictionary(p => p.Name, p => p.Parameter);
        copy.Load(k => byKey.TryGetValue(k, out var p) ? p.detach().clone() : null, "adapter copy");
        return copy;
    }

    public static string KeyA(string module) => $"{PeftPrefix}{module}.lora_A.weight";
    public static string KeyB(string module) => $"{PeftPrefix}{module}.lora_B.weight";

    /// <summary>The trainable parameters under PEFT's key names (A then B per layer).</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters()
    {
        foreach (var (module, layer) in Layers)
        {
            yield return (KeyA(module), layer.A);
            yield return (KeyB(module), layer.B);
        }
    }

    /// <summary>The quantized frozen bases installed by <see cref="QuantizeBase"/> (empty for a dense base).</summary>
    public IReadOnlyList<QuantizedLinearBase> QuantizedBases => _quantized;
    readonly List<QuantizedLinearBase> _quantized = new();

    /// <summary>
    /// QLoRA: stores every adapted layer's frozen weight in the format <see cref="Settings"/> asks for (nothing for a
    /// dense base) and frees the dense weights. Call after the model's final dtype cast.
    /// </summary>
    public void QuantizeBase()
    {
        if (QuantizedFrozenBase.FormatOf(Settings) is not { } format || _quantized.Count > 0) return;
        foreach (var (_, layer) in Layers) _quantized.Add(QuantizedFrozenBase.Install(layer.Target, format));
    }

    public long ParameterCount => Layers.Sum(l => l.Layer.A.numel() + l.Layer.B.numel());

    /// <summary>Casts the adapter weights (the model's own are cast by <see cref="LlamaForCausalLM.ConvertTo"/>).</summary>
    public void ConvertTo(ScalarType dtype)
    {
        foreach (var (_, layer) in Layers) layer.ConvertTo(dtype);
    }

    /// <summary>Copies adapter weights by PEFT key (<paramref name="read"/> returns null for a missing key).</summary>
    public void Load(Func<string, Tensor?> read, string source)
    {
        foreach (var (module, layer) in Layers)
        {
            using var a = read(KeyA(module)) ?? throw new EngineException($"{source}: no tensor {KeyA(module)}");
            using var b = read(KeyB(module)) ?? throw new EngineException($"{source}: no tensor {KeyB(module)}");
            try { layer.Load(a, b); }
            catch (EngineException e) { throw new EngineException($"{source}: {module}: {e.Message}"); }
        }
    }

    /// <summary>
    /// Folds each update into its base weight (W += scaling·B·A, computed in fp32) and removes the adapters: the model is
    /// then a plain model that saves and exports as usual.
    /// </summary>
    public void MergeAndDetach()
    {
        using (no_grad())
        {
            foreach (var (_, layer) in Layers)
            {
                var proj = layer.Target;
                // A quantized base merges into its dequantized weight (what the adapters were trained against).
                QuantizedFrozenBase.Dequantize(proj);
                using var delta = layer.Delta();
                using var merged = proj.weight.to(ScalarType.Float32) + delta;
                proj.weight.copy_(merged);
            }
        }
        Dispose();
    }

    /// <summary>Removes the adapters from their layers and frees them.</summary>
    public void Dispose()
    {
        foreach (var (_, layer) in Layers) layer.Dispose();
        foreach (var q in _quantized)
            foreach (var (_, layer) in Layers)
                if (ReferenceEquals(layer.Target.FrozenBase, q)) layer.Target.FrozenBase = null;
        foreach (var q in _quantized) q.Dispose();
        _quantized.Clear();
    }

    sealed class SwitchScope : IDisposable
    {
        readonly AdapterSwitch _sw;
        readonly bool _was;
        public SwitchScope(AdapterSwitch sw) { _sw = sw; _was = sw.Enabled; sw.Enabled = false; }
        public void Dispose() => _sw.Enabled = _was;
    }
}
