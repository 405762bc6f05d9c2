// Fused per-token log-prob on CUDA: forward (one pass per row, online max/sum) and backward
// (grad = g * (onehot(label) - softmax), recomputed from the logits and the forward's stats).
//
// Compiled by NVRTC (no headers: NVRTC 11.8 has no cuda_bf16.h, so bf16 travels as 16-bit integers) and, for
// tests, by g++ against native/cuda/emulation/cuda_cpu_emulation.h, which gives this file CUDA's execution model
// on the CPU. Keep it free of #include and of anything the emulation header does not provide.
//
// Layout: logits [rows, vocab] row-major (float or bf16 bits), labels [rows] int64 with an ignore index,
// stats [rows, 2] = (row max, log sum exp(row - max)).

#define TLP_THREADS 256
#define TLP_WARPS (TLP_THREADS / 32)
#define TLP_BACKWARD_ITEMS 8

__device__ __forceinline__ float tlp_neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ float tlp_load(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float tlp_load(const unsigned short* p, long long i)
{
    return __int_as_float(((int)p[i]) << 16);
}
__device__ __forceinline__ void tlp_store(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void tlp_store(unsigned short* p, long long i, float v)
{
    unsigned int u = (unsigned int)__float_as_int(v);
    u += 0x7FFFu + ((u >> 16) & 1u); // round to nearest even, as torch converts fp32 to bf16
    p[i] = (unsigned short)(u >> 16);
}

// Merges the online state (m, s) with (m2, s2): s is the sum of exp(x - m) over the elements seen.
__device__ __forceinline__ void tlp_merge(float& m, float& s, float m2, float s2)
{
    const float mn = fmaxf(m, m2);
    if (mn == tlp_neg_inf()) return; // both empty (or all -inf)
    s = s * expf(m - mn) + s2 * expf(m2 - mn);
    m = mn;
}

template <typename T>
__device__ void tlp_forward_row(const T* __restrict__ logits, const long long* __restrict__ labels, int rows,
                                int vocab, long long ignore_index, float* __restrict__ logp,
                                float* __restrict__ stats, float* __restrict__ logit_mean)
{
    __shared__ float shared_m[TLP_WARPS];
    __shared__ float shared_s[TLP_WARPS];
    __shared__ float shared_x[TLP_WARPS];

    const int row = blockIdx.x;
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const T* x = logits + (long long)row * vocab;

    // Per thread: one exp per element; the running sum is rescaled only when the max grows.
    float m = tlp_neg_inf(), s = 0.0f, xs = 0.0f;
    for (int i = tid; i < vocab; i += TLP_THREADS)
    {
        const float v = tlp_load(x, i);
        xs += v;
        if (v > m)
        {
            s = s * expf(m - v) + 1.0f;
            m = v;
        }
        else if (m != tlp_neg_inf())
        {
            s += expf(v - m);
        }
    }
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
        xs += __shfl_xor_sync(0xffffffffu, xs, offset);
        tlp_merge(m, s, m2, s2);
    }
    if (lane == 0)
    {
        shared_m[warp] = m;
        shared_s[warp] = s;
        shared_x[warp] = xs;
    }
    __syncthreads();
    if (warp == 0)
    {
        m = lane < TLP_WARPS ? shared_m[lane] : tlp_neg_inf();
        s = lane < TLP_WARPS ? shared_s[lane] : 0.0f;
        xs = lane < TLP_WARPS ? shared_x[lane] : 0.0f;
        for (int offset = 16; offset > 0; offset >>= 1)
        {
            const float m2 = __shfl_xor_sync(0xffffffffu, m, offset);
            const float s2 = __shfl_xor_sync(0xffffffffu, s, offset);
            xs += __shfl_xor_sync(0xffffffffu, xs, offset);
            tlp_merge(m, s, m2, s2);
        }
        if (lane == 0)
        {
            const float log_sum = logf(s);
            const long long label = labels[row];
            stats[2 * row] = m;
            stats[2 * row + 1] = log_sum;
            logit_mean[row] = xs / (float)vocab;
            float lp = 0.0f;
            if (label != ignore_index)
            {
                // An out-of-range label gives NaN; the host validates labels before launching.
                lp = (label >= 0 && label < vocab) ? (tlp_load(x, label) - m) - log_sum : __int_as_float(0x7fc00000);
            }
            logp[row] = lp;
        }
    }
}

template <typename T>
__device__ void tlp_backward_tile(const T* logits, const long long* __restrict__ labels,
                                  const float* __restrict__ stats, const float* __restrict__ grad_out, int rows,
                                  int vocab, long long ignore_index, T* grad)
{
    // grid: (rows, tiles of TLP_THREADS * TLP_BACKWARD_ITEMS columns). grad may alias logits: each element is
    // read and then written by the same thread.
    const int row = blockIdx.x;
    const long long base = (long long)row * vocab;
    const long long label = labels[row];
    const bool zero = label == ignore_index || label < 0 || label >= vocab;
    const float g = zero ? 0.0f : grad_out[row];
    const float m = stats[2 * row], log_sum = stats[2 * row + 1];
    const int first = blockIdx.y * (TLP_THREADS * TLP_BACKWARD_ITEMS) + threadIdx.x;
    for (int k = 0; k < TLP_BACKWARD_ITEMS; ++k)
    {
        const int i = first + k * TLP_THREADS;
        if (i >= vocab) break;
        float value = 0.0f;
        if (!zero)
        {
            const float p = expf((tlp_load(logits, base + i) - m) - log_sum);
            value = (i == label) ? g * (1.0f - p) : -g * p;
        }
        tlp_store(grad, base + i, value);
    }
}

extern "C" __global__ void __launch_bounds__(TLP_THREADS)
token_logprob_forward_f32(const float* logits, const long long* labels, int rows, int vocab, long long ignore_index,
                          float* logp, float* stats, float* logit_mean)
{
    tlp_forward_row<float>(logits, labels, rows, vocab, ignore_index, logp, stats, logit_mean);
}

extern "C" __global__ void __launch_bounds__(TLP_THREADS)
token_logprob_forward_bf16(const unsigned short* logits, const long long* labels, int rows, int vocab,
                           long long ignore_index, float* logp, float* stats, float* logit_mean)
{
    tlp_forward_row<unsigned short>(logits, labels, rows, vocab, ignore_index, logp, stats, logit_mean);
}

extern "C" __global__ void __launch_bounds__(TLP_THREADS)
token_logprob_backward_f32(const float* logits, const long long* labels, const float* stats, const float* grad_out,
                           int rows, int vocab, long long ignore_index, float* grad)
{
    tlp_backward_tile<float>(logits, labels, stats, grad_out, rows, vocab, ignore_index, grad);
}

extern "C" __global__ void __launch_bounds__(TLP_THREADS)
token_logprob_backward_bf16(const unsigned short* logits, const long long* labels, const float* stats,
                            const float* grad_out, int rows, int vocab, long long ignore_index, unsigned short* grad)
{
    tlp_backward_tile<unsigned short>(logits, labels, stats, grad_out, rows, vocab, ignore_index, grad);
}
