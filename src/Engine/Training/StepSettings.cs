using Engine.Adapters;
using Engine.Data;
using Engine.Kernels;
using Engine.Methods;
using Engine.Util;

namespace Engine.Training;

public enum ReferenceMode
{
    /// <summary>Reference log-probs computed in one pre-pass and cached beside the run; no reference weights while training.</summary>
    [Spelling("cached")] Cached,
    /// <summary>A frozen reference model stays in memory and is run on every batch.</summary>
    [Spelling("resident")] Resident,
}

public enum Precision
{
    [Spelling("f32")] F32,
    /// <summary>bf16 compute with fp32 master weights, optimizer state, loss and logsumexp.</summary>
    [Spelling("bf16")] Bf16Mixed,
    /// <summary>bf16 weights updated directly (no fp32 master copy): least memory, least accurate.</summary>
    [Spelling("bf16-pure")] Bf16Pure,
}

/// <summary>
/// What one training step is: the method and its objective, the model, the micro-batch and token lengths, and every
/// knob that changes the step's memory or arithmetic. `train`, `plan`, `plan --measure` and `bench train` all read
/// this one record, so what the planner predicts and measures is the step that training runs.
/// </summary>
public sealed record StepSettings
{
    public AlignmentMethod Method { get; init; } = AlignmentMethods.Dpo;
    public ObjectiveOptions Objective { get; init; } = new();
    /// <summary>A Hugging Face model folder, a GGUF file, or (where no weights are needed) a preset name.</summary>
    public string Model { get; init; } = "";
    /// <summary>The reference model when it is not <see cref="Model"/> itself.</summary>
    public string? ReferenceModel { get; init; }
    /// <summary>Pairs (paired methods) or rows per micro-batch.</summary>
    public int MicroBatch { get; init; } = 4;
    public int MaxLength { get; init; } = TokenizationSettings.DefaultMaxLength;
    /// <summary>Null: <see cref="TokenizationSettings.PromptLimitFor"/> the max length (TRL's 512 at 1024).</summary>
    public int? MaxPromptLength { get; init; }
    public TruncationMode TruncationMode { get; init; } = TokenizationSettings.Default.TruncationMode;
    public Precision Precision { get; init; } = Precision.F32;
    /// <summary>AdamW moments in bf16 instead of fp32 (halves their memory; see docs/memory.md).</summary>
    public bool Bf16OptimizerStates { get; init; }
    public bool ActivationCheckpointing { get; init; }
    public LogProbMode Head { get; init; } = LogProbMode.Fused;
    /// <summary>Fused native kernels or TorchSharp composites for RMSNorm, RoPE and the MLP activation.</summary>
    // Also chooses the AdamW update (see EffectiveOptimizerKernel); --kernels torch opts out.
    public KernelChoice Kernels { get; init; } = FusedKernels.Default;
    /// <summary>How AdamW's update runs: the multi-tensor native kernel or libtorch's ops (same results and state); null
    /// follows <see cref="Kernels"/>.</summary>
    public OptimizerKernel? OptimizerKernel { get; init; }
    public OptimizerKernel EffectiveOptimizerKernel => OptimizerKernel ?? (Kernels == KernelChoice.Fused ? Training.OptimizerKernel.Fused : Training.OptimizerKernel.Torch);
    public ReferenceMode Reference { get; init; } = ReferenceMode.Cached;
    /// <summary>LoRA / QLoRA (TRL's --use-peft and its options); disabled: full fine-tuning.</summary>
    public LoraSettings Lora { get; init; } = new();

    public bool UsesReference => Method.UsesReference(Objective);
    public MethodCost Cost => Method.Cost(Objective);
    /// <summary>Sequences in the policy's gradient forward of one micro-batch.</summary>
    public int PolicyRows => MicroBatch * Cost.PolicyRows;

    public TokenizationSettings Tokenization => new()
    {
        MaxLength = MaxLength, MaxPromptLength = MaxPromptLength ?? TokenizationSettings.PromptLimitFor(MaxLength), TruncationMode = TruncationMode,
    };

    public static TorchSharp.torch.ScalarType ComputeDtype(Precision p) =>
        p == Precision.F32 ? TorchSharp.torch.ScalarType.Float32 : TorchSharp.torch.ScalarType.BFloat16;

    public TorchSharp.torch.ScalarType Dtype => ComputeDtype(Precision);

    public void Validate()
    {
        if (MicroBatch < Method.MinMicroBatch)
            throw new EngineException(Method.MinMicroBatch > 1
                ? $"{Method.Name} needs a micro-batch of at least {Method.MinMicroBatch} (got {MicroBatch}): z0 is estimated from mismatched pairs within a micro-batch"
                : $"the micro-batch must be at least 1 (got {MicroBatch})");
        Method.Validate(Objective);
        Tokenization.Validate();
        Lora.Validate();
    }

    public string Describe() =>
        $"{Method.Name}, {MicroBatch} {Method.ExampleNoun} × {MaxLength} tokens, {Spelling.Of(Precision)}" +
        $"{(Bf16OptimizerStates ? " + bf16 Adam states" : "")}, checkpointing {(ActivationCheckpointing ? "on" : "off")}, " +
        $"{Spelling.Of(Head)} head, {(!UsesReference ? "no reference" : Reference == ReferenceMode.Cached ? "cached reference log-probs" : "resident reference model")}" +
        (Lora.Enabled ? $", {Lora.Describe()}" : "");
}
