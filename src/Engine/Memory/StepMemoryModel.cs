using Engine.Adapters;
using Engine.Kernels;
using Engine.Kernels.Quantized;
using Engine.Models;
using Engine.Training;

namespace Engine.Memory;

/// <summary>
/// The memory of one training microstep of Engine's own implementation (AlignmentTrainer → MethodStep →
/// SequenceScorer → TokenLogProbs → AdamW), component by component, in bytes. Every method states what it counts;
/// <see cref="Estimate"/> puts them together at each moment where the step can peak:
/// the end of the decoder forward, the LM head's forward, a resident reference's forward, the head's backward,
/// the decoder's backward, KTO's no-grad mismatched forward and the optimizer update. Steady state: gradients
/// already exist (they are allocated by the first backward and zeroed, not freed, after each update).
/// </summary>
public sealed class StepMemoryModel
{
    readonly LlamaConfig _c;
    readonly PlannedStep _s;
    readonly long _p;
    readonly int _bytes;

    public StepMemoryModel(LlamaConfig config, PlannedStep settings)
    {
        if (settings.SeqLen < 2) throw new EngineException($"sequence length must be at least 2 (got {settings.SeqLen})");
        settings.Step.Validate();
        if (!(settings.CompletionFraction > 0 && settings.CompletionFraction <= 1))
            throw new EngineException($"completion fraction must be in (0, 1] (got {settings.CompletionFraction})");
        _c = config;
        _s = settings;
        _p = config.ParameterCount();
        _bytes = LayerActivations.ComputeBytes(settings.Precision);
        _lora = settings.Step.Lora;
        _trainable = _lora.Enabled ? AdapterParameterCount(config, _lora) : _p;
    }

    readonly LoraSettings _lora;
    readonly long _trainable;
    bool Lora => _lora.Enabled;

    /// <summary>The linear layers of one decoder layer as (HF name, in, out).</summary>
    static IEnumerable<(string Name, long In, long Out)> Linears(LlamaConfig c)
    {
        long h = c.HiddenSize, q = c.QueryDim, kv = c.KvDim, i = c.IntermediateSize;
        return new[] { ("q_proj", h, q), ("k_proj", h, kv), ("v_proj", h, kv), ("o_proj", q, h), ("gate_proj", h, i), ("up_proj", h, i), ("down_proj", i, h) };
    }

    static IEnumerable<(string Name, long In, long Out)> AdaptedLinears(LlamaConfig c, LoraSettings lora) =>
        Linears(c).Where(l => lora.IsTarget(l.Name));

    /// <summary>LoRA's trainable parameters: A [r, in] and B [out, r] per targeted linear of every layer.</summary>
    public static long AdapterParameterCount(LlamaConfig c, LoraSettings lora) =>
        c.NumLayers * AdaptedLinears(c, lora).Sum(l => lora.Rank * (l.In + l.Out));

    /// <summary>The parameters AdamW updates: every weight, or only the adapters.</summary>
    public long TrainableParameters => _trainable;

    /// <summary>The quantized base's storage format, or null when the base is kept in the compute dtype.</summary>
    QuantFormat? BaseFormat => !Lora ? null : _lora.Quantization switch
    {
        BaseQuantization.Nf4 => _lora.NestedQuantization ? QuantFormat.Nf4DoubleQuant : QuantFormat.Nf4,
        BaseQuantization.Int8 => QuantFormat.Int8,
        _ => null,
    };

    /// <summary>Decoder linear weights (what 4/8-bit loading quantizes; embeddings, norms and the LM head stay in the compute dtype).</summary>
    long LinearWeightParameters => L * Linears(_c).Sum(l => l.In * l.Out);

    public long Parameters => _p;
    long H => _c.HiddenSize;
    long V => _c.VocabSize;
    long I => _c.IntermediateSize;
    long L => _c.NumLayers;
    long Rows => _s.Rows;
    long T => _s.SeqLen;
    /// <summary>Tokens in one policy forward (B·T).</summary>
    public long Tokens => Rows * T;
    /// <summary>Predicted positions (B·(T−1)), the rows of the shifted hidden states before selection.</summary>
    long Shifted => Rows * (T - 1);
    /// <summary>Rows that go through the LM head: completion positions only (SequenceScorer drops the rest).</summary>
    public long HeadRows => Math.Max(1, (long)Math.Round(Shifted * _s.CompletionFraction));
    bool HasReference => !_s.ReferenceFree;
    bool Resident => HasReference && _s.Reference == ReferenceMode.Resident;

    // ---- static: alive for the whole run ----

    /// <summary>The model's weights in the compute dtype; with LoRA the frozen base (linears quantized with 4/8-bit loading)
    /// plus the adapters in the compute dtype.</summary>
    public long Weights => BaseWeights + (Lora ? _trainable * _bytes : 0);

    /// <summary>The base model: every parameter in the compute dtype, or the decoder linears at the quantized format's bytes per parameter.</summary>
    public long BaseWeights => BaseFormat is QuantFormat f
        ? (_p - LinearWeightParameters) * _bytes + (long)Math.Ceiling(LinearWeightParameters * f.BytesPerParameter())
        : _p * _bytes;
    /// <summary>fp32 masters that AdamW updates when the model computes in bf16 (mixed precision only; trainable parameters only).</summary>
    public long MasterWeights => _s.Precision == Precision.Bf16Mixed ? _trainable * 4 : 0;
    /// <summary>.grad of every trainable parameter, in the parameter's dtype (the frozen base has none).</summary>
    public long Gradients => _trainable * _bytes;
    /// <summary>AdamW's exp_avg and exp_avg_sq of the trainable parameters.</summary>
    public long OptimizerStates => 2 * _trainable * (_s.Bf16OptimizerStates ? 2 : 4);
    /// <summary>A frozen copy of the model in the compute dtype (no gradients); cached log-probs are a few floats per row.
    /// With LoRA the reference is the base with the adapters switched off: no second copy.</summary>
    public long ReferenceWeights => Resident && !Lora ? _p * _bytes : 0;

    /// <summary>
    /// What one layer's adapters save for backward: x·Aᵀ [N, r] (B's input) per adapted linear; with dropout also the
    /// dropped input [N, in] (A's input — without dropout A saves x itself, which the layer already holds) and its
    /// mask: CUDA's fused dropout keeps a bool mask (1 B), libtorch's CPU dropout multiplies by a noise tensor in the
    /// compute dtype (s B).
    /// </summary>
    public long AdapterSavedPerLayer => !Lora ? 0 : Tokens * (AdaptedLinears(_c, _lora)
        .Sum(l => _lora.Rank * _bytes + (_lora.Dropout > 0 ? l.In * (_bytes + (_s.Device == MemoryDevice.Cpu ? _bytes : 1)) : 0)));

    /// <summary>
    /// Per token, what the layer table counts that a frozen base does not save: a linear with a frozen weight keeps no
    /// copy of its input (q/k/v's and gate/up's shared inputs, down_proj's input), and a Llama-style norm with a frozen
    /// weight keeps no normalised tensor (unfused kernels). An adapter without dropout saves its linear's input again.
    /// </summary>
    /// (Measured without checkpointing only: a rebuilt checkpointed layer measured as the full table, so it keeps it.)
    long FrozenBaseUnsavedPerToken
    {
        get
        {
            if (!Lora) return 0;
            bool Targeted(params string[] names) => _lora.Dropout == 0 && names.Any(_lora.IsTarget);
            long linearInputs = (Targeted("q_proj", "k_proj", "v_proj") ? 0 : H * _bytes) + (Targeted("gate_proj", "up_proj") ? 0 : H * _bytes)
                + (Targeted("down_proj") ? 0 : I * _bytes);
            long norms = _s.Kernels != KernelChoice.Fused && _c.Norm != NormStyle.UnitOffset ? 2 * H * _bytes : 0;
            return linearInputs + norms;
        }
    }

    /// <summary>
    /// The dequantizing matmul's workspace while a quantized linear runs: the activations repacked [N, in] (bf16: 2 B,
    /// f32: 4 B per element) plus a per-thread scratch of <see cref="DequantScratchPerThread"/>; nothing of size out×in.
    /// </summary>
    public long DequantWorkspace => BaseFormat is null ? 0
        : Tokens * Linears(_c).Max(l => l.In) * (_bytes == 2 ? 2 : 4) + DequantThreads * DequantScratchPerThread;

    public const long DequantScratchPerThread = 256 * 1024;
    static long DequantThreads => Environment.ProcessorCount;

    /// <summary>input_ids, labels and attention_mask (int64 [B, T]); KTO also holds the mismatched batch.</summary>
    public long BatchTensors => 3 * Tokens * 8 * _s.Cost.SequenceBatches;

    // ---- activations saved for backward ----

    /// <summary>All decoder layers' saved tensors: the full table per layer, or only each layer's input with checkpointing.</summary>
    public long SavedLayerActivations => _s.ActivationCheckpointing
        ? L * Tokens * H * _bytes
        : L * (Tokens * (LayerTablePerToken - FrozenBaseUnsavedPerToken) + AdapterSavedPerLayer);

    /// <summary>One layer's full saved set (what a checkpointed layer rebuilds during its backward).</summary>
    public long OneLayerActivations => Tokens * LayerTablePerToken + AdapterSavedPerLayer;

    long LayerTablePerToken => LayerActivations.BytesPerToken(_c, _s.Precision, _s.Kernels, ProbabilityKeys);

    /// <summary>T when the attention runs as explicit matmuls and a softmax (CPU bf16, <see cref="Attention.UsesExplicitSoftmax"/>), else 0.</summary>
    long ProbabilityKeys => LayerActivations.ProbabilityKeys(_s.Device, _s.Precision, T);

    /// <summary>One layer's attention probabilities [B, heads, T, T] in bf16 (explicit softmax only).</summary>
    long AttentionProbabilities => Rows * _c.NumHeads * ProbabilityKeys * T * 2;

    /// <summary>The final norm's saved tensors: its input (f32) or fp32 copy (bf16), the normalised tensor (fp32 for Gemma's
    /// (1 + w) norm, which multiplies in fp32) and rsqrt; fused: its input and the inverse RMS.</summary>
    public long FinalNormSaved => _s.Kernels == KernelChoice.Fused ? Tokens * (H * _bytes + 4)
        : Tokens * (H * 4 + H * (_c.Norm == NormStyle.UnitOffset ? 4 : _bytes) + 4);

    /// <summary>RoPE cos/sin [B, 1, T, head_dim] in the compute dtype, saved by the q/k products: one pair per distinct RoPE
    /// (Gemma 3's local and global layers have one each); the fused kernel adds fp32 half tables [B·T, head_dim/2] per pair.</summary>
    public long RopeTables => (2 * Tokens * _c.HeadDim * _bytes + (_s.Kernels == KernelChoice.Fused ? Tokens * _c.HeadDim * 4 : 0))
        * Enumerable.Range(0, _c.NumLayers).Select(_c.RopeOf).Distinct().Count();

    /// <summary>
    /// Layer outputs that no backward needs but the forward's dispose scope keeps until ForwardHidden returns:
    /// in bf16 the norms save their own fp32 copies, so the embedding output and every layer output are held only
    /// by the scope (with checkpointing, only the last layer's output).
    /// </summary>
    /// (The fused norms save their inputs, the layer outputs, which their table counts: nothing more is held.)
    public long ScopeHeldLayerOutputs => _bytes == 4 || _s.Kernels == KernelChoice.Fused ? 0 : (_s.ActivationCheckpointing ? 1 : L + 1) * Tokens * H * _bytes;

    /// <summary>Tensors of one layer alive but not saved, at its worst moment, with autograd on.</summary>
    long GradLayerTransient
    {
        get
        {
            long kv = _c.KvDim, q = _c.QueryDim;
            // Attention: q/k/v projections' outputs (k_rope too when GQA copies it) plus RoPE's temporaries for k
            // (the fused RoPE rotates in place: none); the explicit softmax's scores beside the probabilities.
            long attention = (q + 3 * kv + (_s.Kernels == KernelChoice.Fused ? 0 : 4 * kv)) * _bytes;
            long mlp = 4 * H * _bytes; // o_proj output, (bf16) h, down_proj output, the layer output
            return Math.Max(Tokens * attention + AttentionProbabilities, Tokens * mlp);
        }
    }

    /// <summary>A decoder layer's peak with autograd off (its scope holds every intermediate until it returns).</summary>
    public long NoGradLayerPeak
    {
        get
        {
            long kv = _c.KvDim, q = _c.QueryDim;
            long kvCopies = _c.NumHeads > _c.NumKvHeads ? 2 * q : 0;
            long attention = (2 * H + 3 * q + 3 * kv + kvCopies) * _bytes; // norm out, q, q_rope, k, k_rope, v, copies, attn, o_proj
            long mlp = (5 * H + 4 * I) * _bytes;                           // norm out, attn out, h, norm out, g, silu, up, product, down
            long norm = 3 * H * _bytes + H * (_bytes == 4 ? 12 : 16);      // y, attn out, h + the norm's own temporaries
            // The explicit softmax's scope holds the scores and the probabilities.
            return Math.Max(Tokens * attention + 2 * AttentionProbabilities, Tokens * Math.Max(mlp, norm));
        }
    }

    // ---- LM head (per-token log-probs) ----

    /// <summary>hidden[:, :-1] reshaped (a copy, held until the scorer returns) and the selected completion rows.</summary>
    public long HeadInputs => Shifted * H * _bytes + HeadRows * H * _bytes + 3 * Shifted * 8;

    long ChunkRows => Math.Min(HeadRows, ChunkedLinearLogProbFunction.DefaultChunkRows(HeadRows, V));

    /// <summary>
    /// Soft-capped logits (final_logit_softcapping) add one [rows, V] tensor: the tanh that autograd keeps for the cap's
    /// derivative (naive, fused), or one chunk's tanh (chunked).
    /// </summary>
    long SoftcapBuffer => _c.FinalLogitSoftcapping is null ? 0 : (_s.Head == LogProbMode.Chunked ? ChunkRows : HeadRows) * V * _bytes;

    /// <summary>Head buffers at the forward's worst moment (autograd on or off; the forward allocates the same).</summary>
    public long HeadForwardPeak => SoftcapBuffer + _s.Head switch
    {
        // logits (+ fp32 copy in bf16) and the fp32 log_softmax
        LogProbMode.Naive => HeadRows * V * (_bytes == 4 ? 8 : 10),
        LogProbMode.Fused => HeadRows * V * _bytes,
        _ => ChunkRows * V * _bytes,
    };

    /// <summary>What the head keeps for backward: the fp32 log_softmax (naive), the logits (fused), nothing of size V (chunked).</summary>
    public long HeadSaved => (_s.Head == LogProbMode.Chunked ? 0 : SoftcapBuffer) + _s.Head switch
    {
        LogProbMode.Naive => HeadRows * V * 4,
        LogProbMode.Fused => HeadRows * V * _bytes,
        _ => 0,
    };

    /// <summary>Extra bytes while the head's backward runs.</summary>
    public long HeadBackwardTransient => _s.Head switch
    {
        // gather's zero-filled gradient and log_softmax's input gradient, both fp32 [M, V]
        LogProbMode.Naive => 2 * HeadRows * V * 4,
        // the gradient overwrites the logits; the weight gradient and the hidden gradient are new
        LogProbMode.Fused => (Lora ? 0 : V * H * _bytes) + HeadRows * H * _bytes,
        // one chunk's logits, the fp32 weight-gradient accumulator, the hidden gradient, the chunk's grad·W;
        // in bf16 also the chunk's bf16 weight gradient and its fp32 promotion in the accumulation
        // (a frozen LM head, LoRA, gets no weight gradient)
        _ => ChunkRows * V * _bytes + HeadRows * H * _bytes + ChunkRows * H * _bytes + (Lora ? 0 : V * H * 4 + (_bytes == 2 ? V * H * 6 : 0)),
    };

    /// <summary>
    /// What the head leaves allocated through the decoder backward: the gradient of its input rows [M, H], whose C# handle
    /// (the release node's, in front of the fused and chunked heads) stays in the step's dispose scope. The fused head's
    /// [M, V] logits and gradient and the chunked head's weight gradient are released right after the head's backward
    /// (LogProbGradientRelease); the naive head runs no C# code in backward and holds nothing.
    /// </summary>
    public long HeadGradientsHeldByScope => _s.Head == LogProbMode.Naive ? 0 : HeadRows * H * _bytes;

    /// <summary>
    /// Extra bytes while one layer's backward runs: the MLP product's two input gradients (2·N·I·s, measured), or the
    /// RMSNorm backward, which works in fp32 (the gradients of the normalised tensor, of the fp32 input through the
    /// product and through pow, their sum, and in bf16 the cast back: 5–6 fp32 [N, H] tensors, measured) —
    /// whichever is larger (the norm wins in bf16 when I/H is small). The fused norm's backward is one kernel writing the
    /// input gradient (N·H·s) and an fp32 weight gradient per chunk of 64 rows; the explicit softmax's backward holds the
    /// probabilities' gradient and the scores' gradient (2 × [B, heads, T, T] bf16).
    /// </summary>
    public long LayerBackwardWorkspace => Math.Max(Math.Max(2 * Tokens * I * _bytes, 2 * AttentionProbabilities),
        _s.Kernels == KernelChoice.Fused ? Tokens * H * _bytes + (Tokens + 63) / 64 * H * 4 : Tokens * H * 4 * (_bytes == 2 ? 6 : 5));

    /// <summary>A no-grad scorer forward (reference model, KTO mismatched pairs): the decoder or the head, whichever is larger.</summary>
    public long NoGradForwardPeak
    {
        get
        {
            long decoder = (L + 1) * Tokens * H * _bytes + NoGradLayerPeak + RopeTables + DequantWorkspace;
            long head = Tokens * H * _bytes + HeadInputs + HeadForwardPeak;
            return Math.Max(decoder, head);
        }
    }

    // ---- optimizer ----

    long LargestParameter => Lora
        ? AdaptedLinears(_c, _lora).Select(l => _lora.Rank * Math.Max(l.In, l.Out)).DefaultIfEmpty(0).Max()
        : Math.Max(V * H, Math.Max(I * H, (long)_c.QueryDim * H));

    /// <summary>
    /// AdamW.Step works one parameter at a time: the fp32 denominator, an fp32 copy of a bf16 gradient, fp32 copies of
    /// bf16 moments. Gradient clipping squares one gradient at a time (fp32).
    /// </summary>
    public long OptimizerTransient
    {
        get
        {
            long perElement = 4 + (_bytes == 2 ? 4 : 0) + (_s.Bf16OptimizerStates ? 8 : 0);
            long clip = 4 + (_bytes == 2 ? 4 : 0);
            return LargestParameter * Math.Max(perElement, clip);
        }
    }

    public MemoryEstimate Estimate()
    {
        var statics = new List<MemoryComponent>
        {
            !Lora ? new("weights", Weights, $"P × {_bytes} B", ComponentKind.Weights)
            : new("frozen base weights", BaseWeights, BaseFormat is QuantFormat f
                ? $"decoder linears × {f.BytesPerParameter():0.####} B ({f.Name()}) + the rest × {_bytes} B" : $"P × {_bytes} B", ComponentKind.Weights),
        };
        // P: every parameter (full fine-tuning) or Pa, the adapters' r·(in + out) per targeted linear (LoRA).
        string p = Lora ? "Pa" : "P";
        if (Lora) statics.Add(new("LoRA adapters", _trainable * _bytes, $"Pa × {_bytes} B, Pa = L × Σ r·(in + out) = {_trainable:N0}", ComponentKind.Adapters));
        if (MasterWeights > 0) statics.Add(new("fp32 master weights", MasterWeights, $"{p} × 4 B", ComponentKind.MasterWeights));
        statics.Add(new("gradients", Gradients, $"{p} × {_bytes} B", ComponentKind.Gradients));
        statics.Add(new("optimizer states", OptimizerStates, $"2 × {p} × {(_s.Bf16OptimizerStates ? 2 : 4)} B (AdamW moments)", ComponentKind.OptimizerStates));
        if (ReferenceWeights > 0) statics.Add(new("reference model", ReferenceWeights, $"P × {_bytes} B", ComponentKind.ReferenceModel));
        statics.Add(new("batch tensors", BatchTensors, "3 int64 [B, T]" + (_s.Cost.SequenceBatches > 1 ? " × 2 (matched + mismatched)" : ""), ComponentKind.BatchTensors));

        string layers = _s.ActivationCheckpointing ? "L × B·T × H × s (checkpointed layer inputs)" : "L × B·T × (per-layer table)";
        MemoryComponent Activations() => new("activations (saved)", SavedLayerActivations + RopeTables, layers + " + RoPE tables");
        MemoryComponent FinalNorm() => new("final norm (saved)", FinalNormSaved, "B·T × (4H + sH + 4), fp32 normalised tensor for (1 + w) norms");

        var points = new List<PeakPoint>();
        points.Add(new("end of decoder forward", statics.Concat(new[]
        {
            Activations(), FinalNorm(),
            new MemoryComponent("layer outputs held by the forward scope", ScopeHeldLayerOutputs, "bf16: (L+1 or 1) × B·T × H × s"),
            new MemoryComponent("final hidden states", Tokens * H * _bytes, "B·T × H × s"),
            new MemoryComponent("layer workspace", (_s.ActivationCheckpointing ? NoGradLayerPeak : GradLayerTransient) + DequantWorkspace,
                "one layer's unsaved intermediates" + (DequantWorkspace > 0 ? " + the dequantizing matmul's workspace" : "")),
        }).ToList()));
        points.Add(new("LM head forward", statics.Concat(new[]
        {
            Activations(), FinalNorm(),
            new MemoryComponent("final hidden states", Tokens * H * _bytes, "B·T × H × s"),
            new MemoryComponent("head inputs", HeadInputs, "shifted copy + selected rows + indices"),
            new MemoryComponent($"logits / log-prob buffers ({_s.Head.ToString().ToLowerInvariant()})", HeadForwardPeak, "M × V (chunk for chunked)"),
        }).ToList()));
        var afterScore = new[]
        {
            Activations(), FinalNorm(),
            new MemoryComponent("head inputs (selected rows)", HeadRows * H * _bytes, "M × H × s"),
            new MemoryComponent("head saved for backward", HeadSaved, "naive: M × V × 4; fused: M × V × s"),
        };
        if (Resident)
            points.Add(new("reference forward (resident model)", statics.Concat(afterScore)
                .Append(new MemoryComponent("reference forward (no grad)", NoGradForwardPeak, "layer outputs + one layer + head")).ToList()));
        points.Add(new("LM head backward", statics.Concat(afterScore)
            .Append(new MemoryComponent("head backward buffers", HeadBackwardTransient, "see HeadBackwardTransient")).ToList()));

        var decoderBackward = new List<MemoryComponent>(statics)
        {
            Activations(),
            new("gradient flowing back", 2 * Tokens * H * _bytes, "dx and the residual branch's gradient"),
            new("head gradients held by the step's scope", HeadGradientsHeldByScope, "fused, chunked: the head input's gradient M × H × s"),
            new("layer backward workspace", LayerBackwardWorkspace + DequantWorkspace, "max(2 × B·T × I × s, RMSNorm's fp32 backward temporaries)"
                + (DequantWorkspace > 0 ? " + the dequantizing matmul's workspace" : "")),
        };
        if (_s.ActivationCheckpointing)
        {
            // The last layer is rebuilt with autograd on while every checkpointed input is still held; in f32 its input
            // entry is the checkpoint's own saved tensor (already counted).
            // (The fused table counts the layer input in every precision.)
            bool tableHasInput = _bytes == 4 || _s.Kernels == KernelChoice.Fused;
            long rebuilt = OneLayerActivations - (tableHasInput ? Tokens * H * _bytes : 0) + Tokens * H * _bytes;
            decoderBackward.Add(new("recomputed layer (checkpointing)", rebuilt, "one layer's saved set + its output"));
        }
        points.Add(new("decoder backward", decoderBackward));

        if (_s.Cost.NoGradPolicyRows > 0)
            points.Add(new("KTO mismatched forward (no grad)", statics.Append(
                new MemoryComponent("mismatched forward (no grad)", NoGradForwardPeak, "layer outputs + one layer + head")).ToList()));

        points.Add(new("optimizer update", statics.Where(c => c.Kind != ComponentKind.BatchTensors)
            .Append(new MemoryComponent("optimizer workspace", OptimizerTransient, "largest parameter × fp32 temporaries")).ToList()));

        var allowances = new List<MemoryComponent>();
        if (_s.Device == MemoryDevice.Cuda)
        {
            var peak = points.MaxBy(p => p.Bytes)!;
            long dynamicBytes = peak.Bytes - statics.Sum(c => c.Bytes);
            allowances.Add(new("CUDA context", CudaAllowances.ContextBytes, "stated constant (CudaAllowances)"));
            allowances.Add(new("cuBLAS workspace", CudaAllowances.CublasWorkspaceBytes, "stated constant"));
            allowances.Add(new("allocator fragmentation", (long)(dynamicBytes * CudaAllowances.FragmentationFraction),
                $"{CudaAllowances.FragmentationFraction:P0} of the dynamic bytes"));
        }
        return new MemoryEstimate(_s, _p, statics, points, allowances);
    }
}
