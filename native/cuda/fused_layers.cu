// Fused RMSNorm, RoPE and gated MLP activations (SwiGLU, GeGLU) on CUDA, forward and backward; the same math as
// the CPU kernels (native/src/fused_rows.h): fp32 arithmetic, one rounding on store.
//
// Compiled by NVRTC (no headers: bf16 travels as 16-bit integers) and, for tests, by g++ against
// native/cuda/emulation/cuda_cpu_emulation.h. Keep it free of #include and of anything the emulation lacks.
//
// RMSNorm: x [rows, n], w [n]; mode 0 = HF Llama (w · x̂, x̂ rounded to the dtype first), 1 = Gemma ((1 + w) · x̂).
// RoPE: x [tokens, heads, head_dim] in place, cos/sin fp32 [tokens, head_dim / 2]; inverse = 1 for the backward.
// Gated activations: act 0 = silu, 1 = tanh-GELU; elementwise over count elements.

#define FL_THREADS 256
#define FL_WARPS (FL_THREADS / 32)

__device__ __forceinline__ float fl_load(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float fl_load(const unsigned short* p, long long i) { return __int_as_float(((int)p[i]) << 16); }
__device__ __forceinline__ float fl_round(float v, const float*) { return v; }
__device__ __forceinline__ float fl_round(float v, const unsigned short*)
{
    unsigned int u = (unsigned int)__float_as_int(v);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return __int_as_float((int)(u & 0xFFFF0000u));
}
__device__ __forceinline__ void fl_store(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void fl_store(unsigned short* p, long long i, float v)
{
    unsigned int u = (unsigned int)__float_as_int(v);
    u += 0x7FFFu + ((u >> 16) & 1u); // round to nearest even, as torch converts fp32 to bf16
    p[i] = (unsigned short)(u >> 16);
}

// Sum of v over the block (every thread gets it). Fixed order: lanes by xor butterfly, warps in index order.
__device__ __forceinline__ float fl_block_sum(float v)
{
    __shared__ float partial[FL_WARPS];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < FL_WARPS; ++w) total += partial[w];
    __syncthreads(); // partial is reused by the next call
    return total;
}

// ---- RMSNorm: one block per row ----
template <typename T>
__device__ void fl_rmsnorm_forward(const T* __restrict__ x, const T* __restrict__ w, int n, float eps, int mode,
                                   T* __restrict__ y, float* __restrict__ inv_rms)
{
    const long long base = (long long)blockIdx.x * n;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < n; j += FL_THREADS)
    {
        const float v = fl_load(x, base + j);
        ss += v * v;
    }
    const float inv = 1.0f / sqrtf(fl_block_sum(ss) / (float)n + eps);
    if (threadIdx.x == 0) inv_rms[blockIdx.x] = inv;
    for (int j = threadIdx.x; j < n; j += FL_THREADS)
    {
        const float xhat = fl_load(x, base + j) * inv;
        const float wv = fl_load(w, j);
        fl_store(y, base + j, mode == 1 ? xhat * (wv + 1.0f) : wv * fl_round(xhat, x));
    }
}

// dx = inv · (ĝ − x̂ · mean(ĝ · x̂)), ĝ = dy · w'. One block per chunk of rows_per_block rows; the block adds
// dy · x̂ of its rows into dw_partial[blockIdx.x, :] (each column owned by one thread: no atomics), and
// fl_rmsnorm_dw_reduce sums the chunks in order, so dw has the same bits on every run.
template <typename T>
__device__ void fl_rmsnorm_backward(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ inv_rms,
                                    const T* dy, int rows, int n, int mode, int rows_per_block, T* dx,
                                    float* __restrict__ dw_partial)
{
    const float offset = mode == 1 ? 1.0f : 0.0f;
    float* acc = dw_partial + (long long)blockIdx.x * n;
    for (int j = threadIdx.x; j < n; j += FL_THREADS) acc[j] = 0.0f;
    const int first = blockIdx.x * rows_per_block;
    const int last = first + rows_per_block < rows ? first + rows_per_block : rows;
    for (int r = first; r < last; ++r)
    {
        const long long base = (long long)r * n;
        const float inv = inv_rms[r];
        float dot = 0.0f;
        for (int j = threadIdx.x; j < n; j += FL_THREADS)
            dot += fl_load(dy, base + j) * (fl_load(w, j) + offset) * fl_load(x, base + j);
        const float c = fl_block_sum(dot) * inv * inv / (float)n;
        for (int j = threadIdx.x; j < n; j += FL_THREADS)
        {
            const float xv = fl_load(x, base + j), gv = fl_load(dy, base + j);
            acc[j] += gv * xv * inv;
            fl_store(dx, base + j, inv * (gv * (fl_load(w, j) + offset) - xv * c));
        }
    }
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
rmsnorm_forward_f32(const float* x, const float* w, int n, float eps, int mode, float* y, float* inv_rms)
{
    fl_rmsnorm_forward<float>(x, w, n, eps, mode, y, inv_rms);
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
rmsnorm_forward_bf16(const unsigned short* x, const unsigned short* w, int n, float eps, int mode, unsigned short* y, float* inv_rms)
{
    fl_rmsnorm_forward<unsigned short>(x, w, n, eps, mode, y, inv_rms);
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
rmsnorm_backward_f32(const float* x, const float* w, const float* inv_rms, const float* dy, int rows, int n, int mode,
                     int rows_per_block, float* dx, float* dw_partial)
{
    fl_rmsnorm_backward<float>(x, w, inv_rms, dy, rows, n, mode, rows_per_block, dx, dw_partial);
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
rmsnorm_backward_bf16(const unsigned short* x, const unsigned short* w, const float* inv_rms, const unsigned short* dy, int rows,
                      int n, int mode, int rows_per_block, unsigned short* dx, float* dw_partial)
{
    fl_rmsnorm_backward<unsigned short>(x, w, inv_rms, dy, rows, n, mode, rows_per_block, dx, dw_partial);
}

// dw[j] = Σ_chunks dw_partial[c, j], chunks in order (grid-stride over columns).
extern "C" __global__ void __launch_bounds__(FL_THREADS)
rmsnorm_dw_reduce(const float* dw_partial, int chunks, int n, float* dw)
{
    for (int j = blockIdx.x * FL_THREADS + threadIdx.x; j < n; j += gridDim.x * FL_THREADS)
    {
        float s = 0.0f;
        for (int c = 0; c < chunks; ++c) s += dw_partial[(long long)c * n + j];
        dw[j] = s;
    }
}

// ---- RoPE: one block per token, threads over (head, i < half) ----
// src [batch, seq, heads, head_dim] at element strides (sb, st, sh), head_dim contiguous; dst contiguous, or src itself
// with contiguous strides (in place: each thread reads both halves of its pair before writing them). Same as the CPU path.
template <typename T>
__device__ void fl_rope(const T* src, long long sb, long long st, long long sh, T* dst, const float* __restrict__ cos,
                        const float* __restrict__ sin, int seq, int heads, int head_dim, int inverse)
{
    const int half = head_dim / 2;
    const long long t = blockIdx.x;
    const long long src_t = (t / seq) * sb + (t % seq) * st;
    const float sign = inverse ? -1.0f : 1.0f;
    for (int k = threadIdx.x; k < heads * half; k += FL_THREADS)
    {
        const int h = k / half, i = k - h * half;
        const long long p = (t * heads + h) * head_dim + i;
        const long long q = src_t + h * sh + i;
        const float c = cos[t * half + i], s = sign * sin[t * half + i];
        const float a = fl_load(src, q), b = fl_load(src, q + half);
        fl_store(dst, p, a * c - b * s);
        fl_store(dst, p + half, b * c + a * s);
    }
}

// In place on x [tokens, heads, head_dim].
extern "C" __global__ void __launch_bounds__(FL_THREADS)
rope_f32(float* x, const float* cos, const float* sin, int heads, int head_dim, int inverse)
{
    fl_rope<float>(x, 0, (long long)heads * head_dim, head_dim, x, cos, sin, gridDim.x, heads, head_dim, inverse);
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
rope_bf16(unsigned short* x, const float* cos, const float* sin, int heads, int head_dim, int inverse)
{
    fl_rope<unsigned short>(x, 0, (long long)heads * head_dim, head_dim, x, cos, sin, gridDim.x, heads, head_dim, inverse);
}

// Strided src -> contiguous dst, grid = batch · seq blocks: the backward on the transposed gradient in one pass.
extern "C" __global__ void __launch_bounds__(FL_THREADS)
rope_strided_f32(const float* src, long long sb, long long st, long long sh, float* dst, const float* cos, const float* sin,
                 int seq, int heads, int head_dim, int inverse)
{
    fl_rope<float>(src, sb, st, sh, dst, cos, sin, seq, heads, head_dim, inverse);
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
rope_strided_bf16(const unsigned short* src, long long sb, long long st, long long sh, unsigned short* dst, const float* cos,
                  const float* sin, int seq, int heads, int head_dim, int inverse)
{
    fl_rope<unsigned short>(src, sb, st, sh, dst, cos, sin, seq, heads, head_dim, inverse);
}

// ---- Gated activations (grid-stride, elementwise) ----
// silu: g·σ(g), σ' form s·(1 + g(1 − s)). tanh-GELU with e = e^(−2a), a = √(2/π)(g + 0.044715 g³):
// 1 + tanh(a) = 2/(1 + e), 1 − tanh²(a) = (1 + tanh)² · e (no cancellation near ±1).
__device__ __forceinline__ void fl_activation(int act, float g, float& value, float& slope)
{
    if (act == 0)
    {
        const float s = 1.0f / (1.0f + expf(fminf(-g, 88.0f)));
        value = g * s;
        slope = s * (1.0f + g * (1.0f - s));
    }
    else
    {
        const float k = 0.7978845608028654f, c = 0.044715f;
        const float a = k * (g + c * g * g * g);
        const float e = expf(fminf(-2.0f * a, 88.0f));
        const float p = 2.0f / (1.0f + e);
        value = 0.5f * g * p;
        slope = 0.5f * (p + g * (p * p * e) * k * (1.0f + 3.0f * c * g * g));
    }
}

template <typename T>
__device__ void fl_glu_forward(int act, const T* __restrict__ gate, const T* __restrict__ up, long long count, T* __restrict__ h)
{
    for (long long i = (long long)blockIdx.x * FL_THREADS + threadIdx.x; i < count; i += (long long)gridDim.x * FL_THREADS)
    {
        float v, d;
        fl_activation(act, fl_load(gate, i), v, d);
        fl_store(h, i, v * fl_load(up, i));
    }
}

// d_gate may be gate and d_up may be up: element i is read before it is written, by the same thread.
template <typename T>
__device__ void fl_glu_backward(int act, const T* gate, const T* up, const T* __restrict__ dh, long long count, T* d_gate, T* d_up)
{
    for (long long i = (long long)blockIdx.x * FL_THREADS + threadIdx.x; i < count; i += (long long)gridDim.x * FL_THREADS)
    {
        float v, d;
        fl_activation(act, fl_load(gate, i), v, d);
        const float gh = fl_load(dh, i), u = fl_load(up, i);
        fl_store(d_gate, i, gh * u * d);
        fl_store(d_up, i, gh * v);
    }
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
glu_forward_f32(int act, const float* gate, const float* up, long long count, float* h)
{
    fl_glu_forward<float>(act, gate, up, count, h);
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
glu_forward_bf16(int act, const unsigned short* gate, const unsigned short* up, long long count, unsigned short* h)
{
    fl_glu_forward<unsigned short>(act, gate, up, count, h);
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
glu_backward_f32(int act, const float* gate, const float* up, const float* dh, long long count, float* d_gate, float* d_up)
{
    fl_glu_backward<float>(act, gate, up, dh, count, d_gate, d_up);
}

extern "C" __global__ void __launch_bounds__(FL_THREADS)
glu_backward_bf16(int act, const unsigned short* gate, const unsigned short* up, const unsigned short* dh, long long count,
                  unsigned short* d_gate, unsigned short* d_up)
{
    fl_glu_backward<unsigned short>(act, gate, up, dh, count, d_gate, d_up);
}
