using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Engine.Gguf.LlamaCpp;

/// <summary>
/// <c>struct llama_model_params</c> of the llama.cpp release shipped in @node-llama-cpp/linux-x64@3.22.1
/// (llama.h: 80 bytes). Held as raw bytes so that fields Engine does not set keep the values
/// <c>llama_model_default_params()</c> gave them; only fields whose offsets were taken from that header are written.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = SizeInBytes)]
public unsafe struct LlamaModelParams
{
    public const int SizeInBytes = 80;
    public const int OffsetNGpuLayers = 16;
    public const int OffsetVocabOnly = 72;
    public const int OffsetCheckTensors = 73;

    fixed byte _bytes[SizeInBytes];

    public int NGpuLayers { get => Get<int>(OffsetNGpuLayers); set => Set(OffsetNGpuLayers, value); }
    public bool VocabOnly { get => Get<byte>(OffsetVocabOnly) != 0; set => Set(OffsetVocabOnly, (byte)(value ? 1 : 0)); }
    public bool CheckTensors { get => Get<byte>(OffsetCheckTensors) != 0; set => Set(OffsetCheckTensors, (byte)(value ? 1 : 0)); }

    T Get<T>(int offset) where T : unmanaged { fixed (byte* p = _bytes) return Unsafe.ReadUnaligned<T>(p + offset); }
    void Set<T>(int offset, T value) where T : unmanaged { fixed (byte* p = _bytes) Unsafe.WriteUnaligned(p + offset, value); }
}

/// <summary><c>struct llama_context_params</c> of the same release (160 bytes); see <see cref="LlamaModelParams"/>.</summary>
[StructLayout(LayoutKind.Sequential, Size = SizeInBytes)]
public unsafe struct LlamaContextParams
{
    public const int SizeInBytes = 160;
    public const int OffsetNCtx = 0;
    public const int OffsetNBatch = 4;
    public const int OffsetNUbatch = 8;
    public const int OffsetNSeqMax = 12;
    public const int OffsetNThreads = 28;
    public const int OffsetNThreadsBatch = 32;
    public const int OffsetFlashAttnType = 52;
    public const int OffsetTypeK = 104;
    public const int OffsetTypeV = 108;
    public const int OffsetEmbeddings = 128;
    public const int OffsetOffloadKqv = 129;
    public const int OffsetNoPerf = 130;

    /// <summary>LLAMA_FLASH_ATTN_TYPE_DISABLED.</summary>
    public const int FlashAttentionDisabled = 0;

    fixed byte _bytes[SizeInBytes];

    public uint NCtx { get => Get<uint>(OffsetNCtx); set => Set(OffsetNCtx, value); }
    public uint NBatch { get => Get<uint>(OffsetNBatch); set => Set(OffsetNBatch, value); }
    public uint NUbatch { get => Get<uint>(OffsetNUbatch); set => Set(OffsetNUbatch, value); }
    public uint NSeqMax { get => Get<uint>(OffsetNSeqMax); set => Set(OffsetNSeqMax, value); }
    public int NThreads { get => Get<int>(OffsetNThreads); set => Set(OffsetNThreads, value); }
    public int NThreadsBatch { get => Get<int>(OffsetNThreadsBatch); set => Set(OffsetNThreadsBatch, value); }
    public int FlashAttnType { get => Get<int>(OffsetFlashAttnType); set => Set(OffsetFlashAttnType, value); }
    public GgmlType TypeK { get => (GgmlType)Get<uint>(OffsetTypeK); set => Set(OffsetTypeK, (uint)value); }
    public GgmlType TypeV { get => (GgmlType)Get<uint>(OffsetTypeV); set => Set(OffsetTypeV, (uint)value); }
    public bool Embeddings { get => Get<byte>(OffsetEmbeddings) != 0; set => Set(OffsetEmbeddings, (byte)(value ? 1 : 0)); }
    public bool NoPerf { get => Get<byte>(OffsetNoPerf) != 0; set => Set(OffsetNoPerf, (byte)(value ? 1 : 0)); }

    T Get<T>(int offset) where T : unmanaged { fixed (byte* p = _bytes) return Unsafe.ReadUnaligned<T>(p + offset); }
    void Set<T>(int offset, T value) where T : unmanaged { fixed (byte* p = _bytes) Unsafe.WriteUnaligned(p + offset, value); }
}

/// <summary><c>struct llama_batch</c> (56 bytes): arrays allocated by llama_batch_init.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct LlamaBatch
{
    public const int SizeInBytes = 56;
    public int NTokens;
    public int* Token;
    public float* Embd;
    public int* Pos;
    public int* NSeqId;
    public int** SeqId;
    public sbyte* Logits;
}
