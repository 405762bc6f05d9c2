using Engine.Adapters;
using Engine.Kernels;
using Engine.Memory;
using Engine.Methods;
using Engine.Training;
using Engine.Data;

namespace Engine.Cli.Options;

/// <summary>
/// The options of <see cref="StepSettings"/> and <see cref="ObjectiveOptions"/>, declared once and shared by
/// train, eval, plan and bench train. Options that fix a memory-planner knob carry it as their tag.
/// </summary>
public static class StepOptions
{
    public static CliOption<StepSettings> Method(IReadOnlyList<AlignmentMethod> methods) =>
        Opt<StepSettings>.Choice("method", "the alignment method", methods.Select(m => m.Name).ToList(), AlignmentMethods.Parse,
            s => s.Method.Name, (s, m) => s with { Method = m }, required: true);

    public static readonly CliOption<StepSettings> Model =
        Opt<StepSettings>.String("model", "the model: a Hugging Face folder or a GGUF file", s => s.Model, (s, v) => s with { Model = v },
            valueName: "DIR|FILE.gguf", required: true);

    public static readonly CliOption<StepSettings> Reference =
        Opt<StepSettings>.String("ref", "the reference model, when it is not --model itself", s => s.ReferenceModel, (s, v) => s with { ReferenceModel = v },
            valueName: "DIR");

    public static readonly CliOption<StepSettings> MicroBatch =
        Opt<StepSettings>.Int("batch-size", "pairs (paired methods) or rows per micro-batch (TRL's per_device_train_batch_size)",
            s => s.MicroBatch, (s, v) => s with { MicroBatch = v }, min: 1).With(tag: PlanKnob.MicroBatch, aliases: "micro-batch");

    public static readonly CliOption<StepSettings> MaxLength =
        Opt<StepSettings>.Int("max-length", "longest prompt + completion in tokens (TRL's max_length)", s => s.MaxLength, (s, v) => s with { MaxLength = v }, min: 2)
            .With(aliases: "seq-len");

    public static readonly CliOption<StepSettings> MaxPromptLength =
        Opt<StepSettings>.OptionalInt("max-prompt-length", "longest prompt in tokens (default: 512, or half a smaller --max-length)",
            s => s.MaxPromptLength, (s, v) => s with { MaxPromptLength = v }, min: 1);

    public static readonly CliOption<StepSettings> Truncation =
        Opt<StepSettings>.Enum("truncation-mode", "which end of an over-long prompt is kept", s => s.TruncationMode, (s, v) => s with { TruncationMode = v });

    public static readonly CliOption<StepSettings> Precision =
        Opt<StepSettings>.Enum("precision", "compute precision (bf16: bf16 compute with fp32 master weights)", s => s.Precision, (s, v) => s with { Precision = v })
            .With(tag: PlanKnob.Precision);

    public static readonly CliOption<StepSettings> OptimizerStates =
        Opt<StepSettings>.Choice("optimizer-state-dtype", "dtype of AdamW's moments", new[] { "f32", "bf16" }, v => v == "bf16",
            s => s.Bf16OptimizerStates ? "bf16" : "f32", (s, v) => s with { Bf16OptimizerStates = v }).With(tag: PlanKnob.OptimizerStates);

    public static readonly CliOption<StepSettings> Checkpointing =
        Opt<StepSettings>.OnOff("checkpointing", "activation checkpointing (recompute each layer in backward)", s => s.ActivationCheckpointing,
            (s, v) => s with { ActivationCheckpointing = v }).With(tag: PlanKnob.Checkpointing);

    public static readonly CliOption<StepSettings> Head =
        Opt<StepSettings>.Enum("logprob", "how per-token log-probs are computed (fused kernel, chunked, or naive log_softmax)", s => s.Head,
            (s, v) => s with { Head = v }).With(tag: PlanKnob.Head);

    public static readonly CliOption<StepSettings> Kernels =
        Opt<StepSettings>.Enum("kernels", "RMSNorm, RoPE, SwiGLU/GeGLU and the AdamW update as fused native kernels or TorchSharp composites", s => s.Kernels,
            (s, v) => s with { Kernels = v });

    public static readonly CliOption<StepSettings> ReferenceMode =
        Opt<StepSettings>.Enum("ref-mode", "cached reference log-probs (one pre-pass) or a resident reference model", s => s.Reference,
            (s, v) => s with { Reference = v }).With(tag: PlanKnob.Reference);

    static CliOption<StepSettings> Objective(CliOption<ObjectiveOptions> o) => o.Lift<StepSettings>(s => s.Objective, (s, v) => s with { Objective = v });

    public static readonly CliOption<StepSettings> Beta = Objective(Opt<ObjectiveOptions>.OptionalDouble("beta",
        "β (ORPO: λ); default: the method's (0.1; SimPO 2.0)", o => o.Beta, (o, v) => o with { Beta = v }));
    public static readonly CliOption<StepSettings> LossType = Objective(Opt<ObjectiveOptions>.String("loss-type",
        "TRL's loss_type: dpo sigmoid|robust|hinge|ipo, kto kto|apo_zero_unpaired", o => o.LossType, (o, v) => o with { LossType = v }, valueName: "T", sample: "sigmoid"));
    public static readonly CliOption<StepSettings> LabelSmoothing = Objective(Opt<ObjectiveOptions>.OptionalDouble("label-smoothing",
        "DPO: assumed label-flip probability ε (cDPO / robust)", o => o.LabelSmoothing, (o, v) => o with { LabelSmoothing = v }, valueName: "E"));
    public static readonly CliOption<StepSettings> RpoAlpha = Objective(Opt<ObjectiveOptions>.OptionalDouble("rpo-alpha",
        "DPO: weight of the chosen completions' NLL (RPO)", o => o.RpoAlpha, (o, v) => o with { RpoAlpha = v }, valueName: "A"));
    public static readonly CliOption<StepSettings> ReferenceFree = Objective(Opt<ObjectiveOptions>.Flag("reference-free",
        "DPO/KTO: take log π_ref as 0 (no reference model)", o => o.ReferenceFree, (o, v) => o with { ReferenceFree = v }));
    public static readonly CliOption<StepSettings> NoZ0 = Objective(Opt<ObjectiveOptions>.Flag("no-z0",
        "KTO ablation: the KL reference point z0 fixed at 0", o => o.NoZ0, (o, v) => o with { NoZ0 = v }));
    public static readonly CliOption<StepSettings> DesirableWeight = Objective(Opt<ObjectiveOptions>.OptionalDouble("desirable-weight",
        "KTO: λ_D, the weight of desirable rows (default 1)", o => o.DesirableWeight, (o, v) => o with { DesirableWeight = v }, valueName: "W"));
    public static readonly CliOption<StepSettings> UndesirableWeight = Objective(Opt<ObjectiveOptions>.OptionalDouble("undesirable-weight",
        "KTO: λ_U, the weight of undesirable rows (default 1)", o => o.UndesirableWeight, (o, v) => o with { UndesirableWeight = v }, valueName: "W"));
    public static readonly CliOption<StepSettings> SimpoGamma = Objective(Opt<ObjectiveOptions>.OptionalDouble("simpo-gamma",
        "SimPO: target margin γ (default 1.0)", o => o.SimpoGamma, (o, v) => o with { SimpoGamma = v }, valueName: "G"));

    static CliOption<StepSettings> Lora(CliOption<LoraSettings> o) => o.Lift<StepSettings>(s => s.Lora, (s, v) => s with { Lora = v });

    public static readonly CliOption<StepSettings> UsePeft = Lora(Opt<LoraSettings>.Flag("use-peft",
        "train LoRA adapters on a frozen base (PEFT) instead of every weight", l => l.Enabled, (l, v) => l with { Enabled = v }));
    public static readonly CliOption<StepSettings> LoraR = Lora(Opt<LoraSettings>.Int("lora-r", "LoRA rank r", l => l.Rank, (l, v) => l with { Rank = v }, min: 1, valueName: "R"));
    public static readonly CliOption<StepSettings> LoraAlpha = Lora(Opt<LoraSettings>.Double("lora-alpha", "LoRA alpha: the update B·A is scaled by alpha/r",
        l => l.Alpha, (l, v) => l with { Alpha = v }, valueName: "A"));
    public static readonly CliOption<StepSettings> LoraDropout = Lora(Opt<LoraSettings>.Double("lora-dropout", "dropout on the adapters' input while training",
        l => l.Dropout, (l, v) => l with { Dropout = v }, valueName: "P"));
    public static readonly CliOption<StepSettings> LoraTargetModules = Lora(Opt<LoraSettings>.List("lora-target-modules",
        $"linear layers that get adapters: {string.Join(",", LoraSettings.LinearModules)} or {LoraSettings.AllLinear}", "MODULES", (v, what) => v,
        l => l.Targets, (l, v) => l with { TargetModules = v }, sample: "q_proj,v_proj"));
    public static readonly CliOption<StepSettings> UseRslora = Lora(Opt<LoraSettings>.Flag("use-rslora", "rsLoRA: scale by alpha/√r instead of alpha/r",
        l => l.UseRslora, (l, v) => l with { UseRslora = v }));
    public static readonly CliOption<StepSettings> LoadIn4Bit = Lora(Opt<LoraSettings>.Flag("load-in-4bit", "QLoRA: keep the frozen base in NF4 (4-bit), dequantized inside the matmul",
        l => l.LoadIn4Bit, (l, v) => l with { LoadIn4Bit = v }));
    public static readonly CliOption<StepSettings> LoadIn8Bit = Lora(Opt<LoraSettings>.Flag("load-in-8bit", "keep the frozen base in blockwise int8",
        l => l.LoadIn8Bit, (l, v) => l with { LoadIn8Bit = v }));
    public static readonly CliOption<StepSettings> FourBitQuantType = Lora(Opt<LoraSettings>.Choice("bnb-4bit-quant-type", "the 4-bit format", new[] { "nf4" }, v => v,
        l => l.FourBitQuantType, (l, v) => l with { FourBitQuantType = v }));
    public static readonly CliOption<StepSettings> NestedQuant = Lora(Opt<LoraSettings>.Flag("use-bnb-nested-quant", "4-bit: quantize the block scales too (double quantization)",
        l => l.NestedQuantization, (l, v) => l with { NestedQuantization = v }));

    /// <summary>LoRA / QLoRA, with TRL's option names (its ModelConfig).</summary>
    public static IReadOnlyList<CliOption<StepSettings>> Peft { get; } = new[]
    {
        UsePeft, LoraR, LoraAlpha, LoraDropout, LoraTargetModules, UseRslora, LoadIn4Bit, LoadIn8Bit, FourBitQuantType, NestedQuant,
    };

    public static IReadOnlyList<CliOption<StepSettings>> ObjectiveKnobs { get; } = new[]
    {
        Beta, LossType, LabelSmoothing, RpoAlpha, ReferenceFree, NoZ0, DesirableWeight, UndesirableWeight, SimpoGamma,
    };

    public static IReadOnlyList<CliOption<StepSettings>> Lengths { get; } = new[] { MaxLength, MaxPromptLength, Truncation };

    /// <summary>The knobs that change a step's memory and arithmetic (the planner's knobs).</summary>
    public static IReadOnlyList<CliOption<StepSettings>> MemoryKnobs { get; } = new[] { MicroBatch, Precision, OptimizerStates, Checkpointing, Head, ReferenceMode };

    /// <summary>Every step option, for the commands that run or plan a training step.</summary>
    public static IReadOnlyList<CliOption<StepSettings>> All(IReadOnlyList<AlignmentMethod> methods) =>
        new[] { Method(methods), Model, Reference }.Concat(MemoryKnobs).Append(Kernels).Concat(Lengths).Concat(ObjectiveKnobs).Concat(Peft).ToList();

    /// <summary>The planner knobs fixed by the options given.</summary>
    public static IReadOnlySet<PlanKnob> FixedKnobs(IReadOnlySet<string> given) =>
        MemoryKnobs.Where(o => given.Contains(o.Name)).Select(o => (PlanKnob)o.Tag!).ToHashSet();

    public static IEnumerable<CliOption<TOuter>> Lift<TOuter>(this IEnumerable<CliOption<StepSettings>> options,
        Func<TOuter, StepSettings> get, Func<TOuter, StepSettings, TOuter> set) => options.Select(o => o.Lift(get, set));
}
