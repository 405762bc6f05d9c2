using System.Reflection;

namespace Engine.Kernels.Cuda;

/// <summary>The CUDA kernel sources (native/cuda/*.cu), embedded in Engine.dll so NVRTC can compile them anywhere.</summary>
internal static class KernelSources
{
    public const string TokenLogProb = "token_logprob.cu";
    public const string KlReduction = "kl_reduction.cu";
    public const string QuantizedMatmul = "qmatmul.cu";
    public const string FusedLayers = "fused_layers.cu";
    public const string AdamW = "adamw.cu";

    /// <summary>The kernels each source defines (their extern "C" names).</summary>
    public static readonly IReadOnlyDictionary<string, string[]> Kernels = new Dictionary<string, string[]>
    {
        [TokenLogProb] = new[] { "token_logprob_forward_f32", "token_logprob_forward_bf16", "token_logprob_backward_f32", "token_logprob_backward_bf16" },
        [KlReduction] = new[] { "kl_z0_reduce" },
        [QuantizedMatmul] = new[] { "qmatmul_forward_f32", "qmatmul_forward_bf16", "qmatmul_backward_f32", "qmatmul_backward_bf16" },
        [FusedLayers] = new[]
        {
            "rmsnorm_forward_f32", "rmsnorm_forward_bf16", "rmsnorm_backward_f32", "rmsnorm_backward_bf16", "rmsnorm_dw_reduce",
            "rope_f32", "rope_bf16", "rope_strided_f32", "rope_strided_bf16", "glu_forward_f32", "glu_forward_bf16", "glu_backward_f32", "glu_backward_bf16",
        },
        [AdamW] = new[] { "adamw_grad_sum_squares", "adamw_clip_scale", "adamw_step" },
    };

    public static IEnumerable<string> Files => Kernels.Keys;

    public static string Read(string file)
    {
        var assembly = typeof(KernelSources).Assembly;
        using Stream? stream = assembly.GetManifestResourceStream("cuda/" + file)
            ?? throw new InvalidOperationException($"CUDA source {file} is not embedded in {assembly.GetName().Name} (see Engine.csproj)");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
