// Multi-tensor AdamW on CUDA: every parameter tensor of the model in one launch (the CPU kernels: native/src/adamw.cpp,
// the arithmetic: native/src/adamw_rows.h, which this file mirrors operation for operation).
//
// Launches, all on the caller's stream, with no host round trip between them:
//   adamw_grad_sum_squares  grid = chunks: each block sums the squares of one chunk's gradients into partials[chunk]
//                           (double; a fixed order, no atomics, so the norm is the same bits on every run);
//   adamw_clip_scale        one block: adds the partials in order, writes the sum of squares and the clipping factor
//                           max_norm / (norm + 1e-6) (1 when the norm is within max_norm, max_norm <= 0, or not finite);
//   adamw_step              grid = chunks: the update of one chunk per block, each gradient multiplied by the factor.
// The tensor list is a device array of AdamWTensorDesc (the layout of EngineAdamWTensor in engine_native.h) and
// first_chunk[i] the global index of tensor i's first chunk (first_chunk[count] = chunks). Each block finds its
// tensor by binary search, so one launch covers tensors of any sizes.
// No #include: see token_logprob.cu.

#define ADAMW_THREADS 256
#define ADAMW_CHUNK 8192
#define ADAMW_WARPS (ADAMW_THREADS / 32)

struct AdamWTensorDesc
{
    void* param;          // float, or bf16 bits (param_dtype 1)
    float* master;        // fp32 master of a bf16 param, or 0
    const void* grad;     // the param's dtype
    void* exp_avg;        // float, or bf16 bits (state_dtype 1)
    void* exp_avg_sq;
    long long numel;
    int param_dtype;
    int state_dtype;
    int decay;
    int reserved;
};

struct AdamWHyperParams
{
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float eps;
    float bias_correction2;
    float step_size;
    float decay_factor;
    float grad_scale;
};

__device__ __forceinline__ float adamw_load(const void* p, int bf16, long long i)
{
    if (bf16) return __int_as_float(((int)((const unsigned short*)p)[i]) << 16);
    return ((const float*)p)[i];
}

__device__ __forceinline__ void adamw_store(void* p, int bf16, long long i, float v)
{
    if (bf16)
    {
        unsigned int u = (unsigned int)__float_as_int(v);
        u += 0x7FFFu + ((u >> 16) & 1u); // round to nearest even, as torch converts fp32 to bf16
        ((unsigned short*)p)[i] = (unsigned short)(u >> 16);
    }
    else
        ((float*)p)[i] = v;
}

// The tensor that owns chunk c: the last i with first_chunk[i] <= c (tensors without elements own no chunk).
__device__ __forceinline__ int adamw_tensor_of(const long long* first_chunk, int count, long long c)
{
    int lo = 0, hi = count - 1;
    while (lo < hi)
    {
        const int mid = (lo + hi + 1) >> 1;
        if (first_chunk[mid] <= c) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// The sum of every thread's s in the block, valid in thread 0 (warp shuffles, then one shared slot per warp).
__device__ __forceinline__ double adamw_block_sum(double s, double* warp_sums)
{
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_xor_sync(0xffffffffu, s, offset);
    if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0)
        for (int w = 0; w < ADAMW_WARPS; ++w) total += warp_sums[w];
    return total;
}

extern "C" __global__ void __launch_bounds__(ADAMW_THREADS)
adamw_grad_sum_squares(const AdamWTensorDesc* tensors, const long long* first_chunk, int count, double* partials)
{
    __shared__ double warp_sums[ADAMW_WARPS];
    const long long chunk = blockIdx.x;
    const int ti = adamw_tensor_of(first_chunk, count, chunk);
    const AdamWTensorDesc t = tensors[ti];
    const long long begin = (chunk - first_chunk[ti]) * ADAMW_CHUNK;
    const long long end = begin + ADAMW_CHUNK < t.numel ? begin + ADAMW_CHUNK : t.numel;
    double s = 0.0;
    for (long long i = begin + threadIdx.x; i < end; i += ADAMW_THREADS)
    {
        const double g = (double)adamw_load(t.grad, t.param_dtype, i);
        s += g * g;
    }
    const double total = adamw_block_sum(s, warp_sums);
    if (threadIdx.x == 0) partials[chunk] = total;
}

extern "C" __global__ void __launch_bounds__(ADAMW_THREADS)
adamw_clip_scale(const double* partials, long long chunks, float max_norm, double* sum_squares, float* grad_scale)
{
    __shared__ double warp_sums[ADAMW_WARPS];
    double s = 0.0;
    for (long long c = threadIdx.x; c < chunks; c += ADAMW_THREADS) s += partials[c];
    const double total = adamw_block_sum(s, warp_sums);
    if (threadIdx.x == 0)
    {
        *sum_squares = total;
        const double norm = sqrt(total);
        // norm - norm == 0 only for a finite norm; a NaN or infinite norm leaves the gradients alone (the trainer
        // skips such a step).
        const bool clip = max_norm > 0.0f && norm - norm == 0.0 && norm > (double)max_norm;
        *grad_scale = clip ? (float)((double)max_norm / (norm + 1e-6)) : 1.0f;
    }
}

extern "C" __global__ void __launch_bounds__(ADAMW_THREADS)
adamw_step(const AdamWTensorDesc* tensors, const long long* first_chunk, int count, AdamWHyperParams h,
           const float* grad_scale)
{
    const long long chunk = blockIdx.x;
    const int ti = adamw_tensor_of(first_chunk, count, chunk);
    const AdamWTensorDesc t = tensors[ti];
    const long long begin = (chunk - first_chunk[ti]) * ADAMW_CHUNK;
    const long long end = begin + ADAMW_CHUNK < t.numel ? begin + ADAMW_CHUNK : t.numel;
    // grad_scale: a device scalar from adamw_clip_scale (0: none); h.grad_scale multiplies it.
    const float scale = grad_scale ? h.grad_scale * *grad_scale : h.grad_scale;
    const float decay = t.decay ? h.decay_factor : 1.0f;
    const int pbf16 = t.param_dtype, sbf16 = t.state_dtype;
    for (long long i = begin + threadIdx.x; i < end; i += ADAMW_THREADS)
    {
        const float g = adamw_load(t.grad, pbf16, i) * scale;
        float w = t.master ? t.master[i] : adamw_load(t.param, pbf16, i);
        float m = adamw_load(t.exp_avg, sbf16, i);
        float v = adamw_load(t.exp_avg_sq, sbf16, i);
        w = w * decay;
        m = m * h.beta1 + h.one_minus_beta1 * g;
        v = v * h.beta2 + (h.one_minus_beta2 * g) * g;
        const float denom = sqrtf(v / h.bias_correction2) + h.eps;
        w = w + (h.step_size * m) / denom;
        adamw_store(t.exp_avg, sbf16, i, m);
        adamw_store(t.exp_avg_sq, sbf16, i, v);
        if (t.master) t.master[i] = w;
        adamw_store(t.param, pbf16, i, w);
    }
}
