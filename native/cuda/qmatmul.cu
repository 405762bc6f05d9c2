// The dequantizing matmul on CUDA (the formats of native/include/engine_native.h, "Quantized weights"):
//   forward         C [m, rows] = A [m, cols] . dequant(W)^T     (x . W^T)
//   input gradient  C [m, cols] = A [m, rows] . dequant(W)       (dy . W; W is frozen, so no weight gradient)
// A tiled SIMT kernel: each block computes a 64 x 64 tile of C with 256 threads (4 x 4 outputs each), staging
// 16-deep slices of A and of the weight, dequantized on the way into shared memory (fp32, rounded to bf16 for bf16
// activations, as dequantize-then-matmul in bf16 does). Products accumulate in fp32.
// Every weight value is code * scale in two fp32 roundings (__fmul_rn/__fadd_rn: no fused multiply-add), the same
// bits as the CPU's engine_dequantize.
// No #include: see token_logprob.cu.

#define QMM_TILE 64
#define QMM_DEPTH 16
#define QMM_THREADS 256
#define QMM_FORMAT_NF4 0
#define QMM_FORMAT_NF4_DQ 1
#define QMM_FORMAT_INT8 2

struct QmmWeight
{
    int format;
    int rows, cols;
    const unsigned char* data;
    const float* absmax;
    const unsigned char* qabsmax;
    const float* absmax2;
    const float* code2;
    float offset;
};

__device__ __forceinline__ float qmm_load(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float qmm_load(const unsigned short* p, long long i) { return __int_as_float(((int)p[i]) << 16); }
__device__ __forceinline__ void qmm_store(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ unsigned int qmm_bf16_bits(float v)
{
    unsigned int u = (unsigned int)__float_as_int(v);
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16; // round to nearest even, as torch does
}
__device__ __forceinline__ void qmm_store(unsigned short* p, long long i, float v) { p[i] = (unsigned short)qmm_bf16_bits(v); }

// W at flat index i (row * cols + column); code: the 16 NF4 values (shared memory).
__device__ __forceinline__ float qmm_weight(const QmmWeight& w, const float* code, long long i)
{
    const long long b = i >> 6;
    const float scale = w.format == QMM_FORMAT_NF4_DQ
        ? __fadd_rn(__fmul_rn(w.code2[w.qabsmax[b]], w.absmax2[b >> 8]), w.offset)
        : w.absmax[b];
    if (w.format == QMM_FORMAT_INT8) return __fmul_rn((float)(signed char)w.data[i], scale);
    const unsigned int byte = w.data[i >> 1];
    return __fmul_rn(code[(i & 1) ? (byte & 15u) : (byte >> 4)], scale);
}

template <typename T, bool INPUT_GRADIENT>
__device__ void qmm_tile(const T* __restrict__ a, int m, const QmmWeight& w, const float* __restrict__ nf4_code, T* __restrict__ c)
{
    __shared__ float a_tile[QMM_DEPTH][QMM_TILE + 1];
    __shared__ float b_tile[QMM_DEPTH][QMM_TILE + 1];
    __shared__ float code[16];

    const int reduce = INPUT_GRADIENT ? w.rows : w.cols;
    const int out_cols = INPUT_GRADIENT ? w.cols : w.rows;
    const int j0 = blockIdx.x * QMM_TILE, m0 = blockIdx.y * QMM_TILE;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const bool round_weight = sizeof(T) == 2;
    if (tid < 16) code[tid] = nf4_code ? nf4_code[tid] : 0.0f;

    float acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

    for (int r0 = 0; r0 < reduce; r0 += QMM_DEPTH)
    {
        __syncthreads(); // the previous slice is consumed (and code[] is written before the first)
        for (int e = tid; e < QMM_TILE * QMM_DEPTH; e += QMM_THREADS)
        {
            const int row = e / QMM_DEPTH, r = e % QMM_DEPTH;
            a_tile[r][row] = (m0 + row < m && r0 + r < reduce) ? qmm_load(a, (long long)(m0 + row) * reduce + r0 + r) : 0.0f;
            // The weight slice: consecutive threads read consecutive weight bytes in both directions.
            const int jj = INPUT_GRADIENT ? e % QMM_TILE : e / QMM_DEPTH;
            const int rr = INPUT_GRADIENT ? e / QMM_TILE : e % QMM_DEPTH;
            float v = 0.0f;
            if (j0 + jj < out_cols && r0 + rr < reduce)
            {
                const long long i = INPUT_GRADIENT ? (long long)(r0 + rr) * w.cols + j0 + jj : (long long)(j0 + jj) * w.cols + r0 + rr;
                v = qmm_weight(w, code, i);
                if (round_weight) v = __int_as_float((int)(qmm_bf16_bits(v) << 16));
            }
            b_tile[rr][jj] = v;
        }
        __syncthreads();
        for (int k = 0; k < QMM_DEPTH; ++k)
        {
            float av[4], bv[4];
            for (int i = 0; i < 4; ++i) av[i] = a_tile[k][ty + 16 * i];
            for (int j = 0; j < 4; ++j) bv[j] = b_tile[k][tx + 16 * j];
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
        {
            const int row = m0 + ty + 16 * i, col = j0 + tx + 16 * j;
            if (row < m && col < out_cols) qmm_store(c, (long long)row * out_cols + col, acc[i][j]);
        }
}

// Grid: (ceil(out_cols / 64), ceil(m / 64)), 256 threads. nf4_code: 16 floats (unused for int8).
#define QMM_KERNEL(name, T, GRAD)                                                                                  \
    extern "C" __global__ void __launch_bounds__(QMM_THREADS)                                                      \
    name(const T* a, int m, int format, int rows, int cols, const unsigned char* data, const float* absmax,      \
         const unsigned char* qabsmax, const float* absmax2, const float* code2, float offset, const float* nf4_code, \
         T* c)                                                                                                     \
    {                                                                                                              \
        QmmWeight w;                                                                                               \
        w.format = format; w.rows = rows; w.cols = cols; w.data = data; w.absmax = absmax;                         \
        w.qabsmax = qabsmax; w.absmax2 = absmax2; w.code2 = code2; w.offset = offset;                              \
        qmm_tile<T, GRAD>(a, m, w, nf4_code, c);                                                                   \
    }

QMM_KERNEL(qmatmul_forward_f32, float, false)
QMM_KERNEL(qmatmul_forward_bf16, unsigned short, false)
QMM_KERNEL(qmatmul_backward_f32, float, true)
QMM_KERNEL(qmatmul_backward_bf16, unsigned short, true)
