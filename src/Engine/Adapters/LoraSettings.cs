using Engine.Util;

namespace Engine.Adapters;

/// <summary>How the frozen base of a LoRA run is stored (TRL's --load-in-4bit / --load-in-8bit).</summary>
public enum BaseQuantization
{
    /// <summary>The base weights as they are, in the compute dtype.</summary>
    [Spelling("none")] None,
    /// <summary>bitsandbytes' 4-bit NormalFloat, 64-value blocks (QLoRA).</summary>
    [Spelling("nf4")] Nf4,
    /// <summary>Blockwise absmax int8.</summary>
    [Spelling("int8")] Int8,
}

/// <summary>
/// A LoRA run's adapter shape, with TRL's ModelConfig names and defaults (lora_r 16, lora_alpha 32, lora_dropout 0.05,
/// target modules: PEFT's default for Llama-family models, q_proj and v_proj).
/// </summary>
public sealed record LoraSettings
{
    /// <summary>TRL's use_peft: train adapters on a frozen base instead of every weight.</summary>
    public bool Enabled { get; init; }
    public int Rank { get; init; } = 16;
    public double Alpha { get; init; } = 32;
    public double Dropout { get; init; } = 0.05;
    /// <summary>Module names (q_proj, …) or <see cref="AllLinear"/>; null: <see cref="DefaultTargets"/>.</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }
    /// <summary>rsLoRA: scale by alpha/√r instead of alpha/r.</summary>
    public bool UseRslora { get; init; }
    /// <summary>QLoRA: the frozen base stored as NF4 (TRL's load_in_4bit).</summary>
    public bool LoadIn4Bit { get; init; }
    /// <summary>The frozen base stored as blockwise int8 (load_in_8bit).</summary>
    public bool LoadIn8Bit { get; init; }
    public BaseQuantization Quantization => LoadIn4Bit ? BaseQuantization.Nf4 : LoadIn8Bit ? BaseQuantization.Int8 : BaseQuantization.None;
    /// <summary>bitsandbytes' 4-bit quant type; only nf4 is implemented.</summary>
    public string FourBitQuantType { get; init; } = "nf4";
    /// <summary>Double quantization of the 4-bit block scales (use_bnb_nested_quant).</summary>
    public bool NestedQuantization { get; init; }

    public const string AllLinear = "all-linear";
    public static IReadOnlyList<string> DefaultTargets { get; } = new[] { "q_proj", "v_proj" };
    /// <summary>The linear layers of a decoder layer LoRA can target (HF names, shared by every supported family).</summary>
    public static IReadOnlyList<string> LinearModules { get; } = new[] { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" };

    public IReadOnlyList<string> Targets => TargetModules ?? DefaultTargets;

    /// <summary>The factor the low-rank product B·A is multiplied by.</summary>
    public double Scaling => UseRslora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    /// <summary>Whether a linear layer called <paramref name="moduleName"/> (its last name segment) gets an adapter.</summary>
    public bool IsTarget(string moduleName) => Targets.Contains(AllLinear) ? LinearModules.Contains(moduleName) : Targets.Contains(moduleName);

    public void Validate()
    {
        if (!Enabled)
        {
            if (Quantization != BaseQuantization.None)
                throw new EngineException("--load-in-4bit / --load-in-8bit quantize the frozen base of a LoRA run: add --use-peft");
            return;
        }
        if (LoadIn4Bit && LoadIn8Bit) throw new EngineException("--load-in-4bit and --load-in-8bit exclude each other");
        if (Rank < 1) throw new EngineException($"--lora-r must be at least 1 (got {Rank})");
        if (!(Alpha > 0) || !double.IsFinite(Alpha)) throw new EngineException($"--lora-alpha must be positive (got {Alpha})");
        if (!(Dropout >= 0 && Dropout < 1)) throw new EngineException($"--lora-dropout must be in [0, 1) (got {Dropout})");
        if (Targets.Count == 0) throw new EngineException("--lora-target-modules names no module");
        foreach (var t in Targets)
            if (t != AllLinear && !LinearModules.Contains(t))
                throw new EngineException($"--lora-target-modules: unknown module '{t}' (use {string.Join(", ", LinearModules)} or {AllLinear})");
        if (FourBitQuantType != "nf4")
            throw new EngineException($"--bnb-4bit-quant-type {FourBitQuantType}: only nf4 is supported");
        if (NestedQuantization && Quantization != BaseQuantization.Nf4)
            throw new EngineException("--use-bnb-nested-quant applies to --load-in-4bit");
    }

    public string Describe() =>
        !Enabled ? "full fine-tuning" :
        $"LoRA r={Rank} α={Alpha}{(UseRslora ? " (rsLoRA)" : "")} dropout={Dropout} on {string.Join(",", Targets)}" +
        (Quantization == BaseQuantization.None ? "" : $", base {Spelling.Of(Quantization)}{(NestedQuantization ? " (nested)" : "")}");
}
