// The exported C API: picks the row kernels for this CPU at run time and spreads rows over threads.
#include "engine_native.h"
#include "row_kernels.h"
#include "thread_pool.h"

#include <sys/mman.h>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <vector>

// x86 CPU-feature checks exist only for x86 targets; elsewhere (ARM, ...) only the scalar kernels are built.
// ENGINE_NO_X86 (CMake's ENGINE_SCALAR_ONLY) compiles an x86 target exactly as a non-x86 one: the check of that path.
#if (defined(__x86_64__) || defined(__i386__)) && !defined(ENGINE_NO_X86)
#define ENGINE_X86 1
#endif
#if (defined(ENGINE_HAVE_AVX2) || defined(ENGINE_HAVE_AVX512)) && !defined(ENGINE_X86)
#error "x86 kernels enabled for a non-x86 target (see cmake/EngineSimd.cmake)"
#endif

namespace {

bool cpu_has(int32_t isa)
{
    switch (isa)
    {
    case ENGINE_ISA_SCALAR: return true;
#ifdef ENGINE_X86
    case ENGINE_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case ENGINE_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
    default: return false;
    }
}

int32_t best_isa()
{
#ifdef ENGINE_HAVE_AVX512
    if (cpu_has(ENGINE_ISA_AVX512)) return ENGINE_ISA_AVX512;
#endif
#ifdef ENGINE_HAVE_AVX2
    if (cpu_has(ENGINE_ISA_AVX2)) return ENGINE_ISA_AVX2;
#endif
    return ENGINE_ISA_SCALAR;
}

const EngineRowKernels* kernels_for(int32_t isa)
{
    switch (isa)
    {
#ifdef ENGINE_HAVE_AVX512
    case ENGINE_ISA_AVX512: return engine_row_kernels_avx512();
#endif
#ifdef ENGINE_HAVE_AVX2
    case ENGINE_ISA_AVX2: return engine_row_kernels_avx2();
#endif
    default: return engine_row_kernels_scalar();
    }
}

#if defined(ENGINE_HAVE_AVX512BF16)
// Under ISA avx512, the fused kernels convert their bf16 outputs with AVX512-BF16 where the CPU has it
// (simd_avx512bf16.h); ENGINE_NATIVE_AVX512BF16=0 keeps the plain AVX-512 conversions (their test on such a CPU).
bool fused_bf16_conversions()
{
    static const bool use = [] {
        const char* off = std::getenv("ENGINE_NATIVE_AVX512BF16");
        return __builtin_cpu_supports("avx512bf16") && !(off != nullptr && std::strcmp(off, "0") == 0);
    }();
    return use;
}
#endif

const EngineFusedKernels* fused_kernels_for(int32_t isa)
{
    switch (isa)
    {
#ifdef ENGINE_HAVE_AVX512
    case ENGINE_ISA_AVX512:
#ifdef ENGINE_HAVE_AVX512BF16
        if (fused_bf16_conversions()) return engine_fused_kernels_avx512bf16();
#endif
        return engine_fused_kernels_avx512();
#endif
#ifdef ENGINE_HAVE_AVX2
    case ENGINE_ISA_AVX2: return engine_fused_kernels_avx2();
#endif
    default: return engine_fused_kernels_scalar();
    }
}

std::atomic<int32_t> g_isa{-1};

int32_t current_isa()
{
    int32_t isa = g_isa.load(std::memory_order_relaxed);
    if (isa < 0)
    {
        isa = best_isa();
        g_isa.store(isa, std::memory_order_relaxed);
    }
    return isa;
}

// Runs body(begin, end) over row ranges on the kernels' worker pool. Rows are independent, so the result does
// not depend on the thread count. Small jobs (under two ranges of 2^16 elements) stay on the calling thread.
template <class Body>
void parallel_rows(int64_t rows, int64_t vocab, Body body)
{
    constexpr int64_t kMinElementsPerRange = 1 << 16;
    engine::parallel_for(0, rows, std::max<int64_t>(1, kMinElementsPerRange / vocab), body);
}

// Outputs of at least this many bytes are written with streaming (non-temporal) stores when every vector store lands
// on a 64-byte boundary (row_bytes: the distance between the starts of the pieces the kernel writes). A plain store
// to a line not in cache first reads it (read-for-ownership); for a buffer larger than the caches that read is
// wasted traffic (a 4 MB f32 product: 0.52 ms with plain stores, 0.21 ms streamed on this Zen 4, one thread).
// Smaller outputs stay plain, so a consumer that runs next still finds them in cache.
constexpr int64_t kStreamMinBytes = int64_t{1} << 20;

int32_t stream_output(const void* out, int64_t bytes, int64_t row_bytes)
{
    return bytes >= kStreamMinBytes && reinterpret_cast<uintptr_t>(out) % 64 == 0 && row_bytes % 64 == 0 ? 1 : 0;
}

int64_t element_size(int32_t dtype) { return dtype == ENGINE_DTYPE_F32 ? 4 : 2; }

// fp32 to bf16, round to nearest even; a NaN stays a quiet NaN whatever its payload (the plain rounding carries a NaN
// whose low 16 bits are set into the exponent: an infinity, or a sign flip).
uint16_t bf16_nearest_even(float v)
{
    uint32_t u;
    std::memcpy(&u, &v, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
    return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// The gated activations split their flat range in blocks of this many elements, so every range starts on a
// 64-byte boundary of an aligned buffer (for streaming stores).
constexpr int64_t kGluBlock = 1024;

bool valid_dtype(int32_t dtype) { return dtype == ENGINE_DTYPE_F32 || dtype == ENGINE_DTYPE_BF16; }

} // namespace

extern "C" {

int32_t engine_native_abi_version(void) { return 7; }

int32_t engine_fused_bf16_conversions(void)
{
#if defined(ENGINE_HAVE_AVX512BF16)
    return current_isa() == ENGINE_ISA_AVX512 && fused_bf16_conversions() ? 1 : 0;
#else
    return 0;
#endif
}

int32_t engine_cpu_isa(void) { return current_isa(); }

int32_t engine_force_isa(int32_t isa)
{
    if (isa < 0)
    {
        g_isa.store(best_isa());
        return ENGINE_OK;
    }
    bool compiled = isa == ENGINE_ISA_SCALAR;
#ifdef ENGINE_HAVE_AVX2
    compiled |= isa == ENGINE_ISA_AVX2;
#endif
#ifdef ENGINE_HAVE_AVX512
    compiled |= isa == ENGINE_ISA_AVX512;
#endif
    if (!compiled || !cpu_has(isa)) return ENGINE_UNSUPPORTED_ISA;
    g_isa.store(isa);
    return ENGINE_OK;
}

void engine_set_threads(int32_t threads) { engine::set_threads(threads); }

int32_t engine_threads(void) { return engine::threads(); }

const char* engine_share_openmp_runtime(void) { return engine::share_openmp_runtime(); }

int32_t engine_logprob_forward(const void* logits, int32_t dtype, const int64_t* labels, int64_t rows, int64_t vocab,
                               int64_t ignore_index, float* logp, float* stats, float* logit_mean, int64_t* bad_row)
{
    if (bad_row) *bad_row = -1;
    if (rows < 0 || vocab <= 0 || !valid_dtype(dtype)) return ENGINE_BAD_ARGUMENT;
    if (rows == 0) return ENGINE_OK;
    if (!logits || !labels || !logp || !stats || !logit_mean) return ENGINE_BAD_ARGUMENT;
    const EngineRowKernels* k = kernels_for(current_isa());
    std::atomic<int64_t> first_bad{-1};
    parallel_rows(rows, vocab, [&](int64_t begin, int64_t end) {
        int64_t bad = dtype == ENGINE_DTYPE_F32
            ? k->forward_f32(static_cast<const float*>(logits), labels, begin, end, vocab, ignore_index, logp, stats, logit_mean)
            : k->forward_bf16(static_cast<const uint16_t*>(logits), labels, begin, end, vocab, ignore_index, logp, stats, logit_mean);
        if (bad >= 0)
        {
            int64_t seen = first_bad.load();
            while ((seen < 0 || bad < seen) && !first_bad.compare_exchange_weak(seen, bad)) {}
        }
    });
    if (first_bad.load() >= 0)
    {
        if (bad_row) *bad_row = first_bad.load();
        return ENGINE_LABEL_OUT_OF_RANGE;
    }
    return ENGINE_OK;
}

int32_t engine_logprob_backward(const void* logits, int32_t dtype, const int64_t* labels, const float* stats,
                                const float* grad_out, int64_t rows, int64_t vocab, int64_t ignore_index, void* grad)
{
    if (rows < 0 || vocab <= 0 || !valid_dtype(dtype)) return ENGINE_BAD_ARGUMENT;
    if (rows == 0) return ENGINE_OK;
    if (!logits || !labels || !stats || !grad_out || !grad) return ENGINE_BAD_ARGUMENT;
    const EngineRowKernels* k = kernels_for(current_isa());
    parallel_rows(rows, vocab, [&](int64_t begin, int64_t end) {
        if (dtype == ENGINE_DTYPE_F32)
            k->backward_f32(static_cast<const float*>(logits), labels, stats, grad_out, begin, end, vocab, ignore_index,
                            static_cast<float*>(grad));
        else
            k->backward_bf16(static_cast<const uint16_t*>(logits), labels, stats, grad_out, begin, end, vocab, ignore_index,
                             static_cast<uint16_t*>(grad));
    });
    return ENGINE_OK;
}

int32_t engine_floor_exp_sum(const void* logits, int32_t dtype, int64_t rows, int64_t vocab, float* out)
{
    if (rows < 0 || vocab <= 0 || !valid_dtype(dtype)) return ENGINE_BAD_ARGUMENT;
    if (rows == 0) return ENGINE_OK;
    if (!logits || !out) return ENGINE_BAD_ARGUMENT;
    const EngineRowKernels* k = kernels_for(current_isa());
    parallel_rows(rows, vocab, [&](int64_t begin, int64_t end) {
        if (dtype == ENGINE_DTYPE_F32) k->floor_f32(static_cast<const float*>(logits), begin, end, vocab, out);
        else k->floor_bf16(static_cast<const uint16_t*>(logits), begin, end, vocab, out);
    });
    return ENGINE_OK;
}

int32_t engine_rmsnorm_forward(const void* x, const void* w, int32_t dtype, int64_t rows, int64_t n, float eps, int32_t mode,
                               void* y, float* inv_rms)
{
    if (rows < 0 || n <= 0 || !valid_dtype(dtype) || (mode != ENGINE_NORM_WEIGHT && mode != ENGINE_NORM_UNIT_OFFSET) || !(eps >= 0))
        return ENGINE_BAD_ARGUMENT;
    if (rows == 0) return ENGINE_OK;
    if (!x || !w || !y || !inv_rms) return ENGINE_BAD_ARGUMENT;
    const EngineFusedKernels* k = fused_kernels_for(current_isa());
    const int32_t stream = stream_output(y, rows * n * element_size(dtype), n * element_size(dtype));
    parallel_rows(rows, n, [&](int64_t begin, int64_t end) {
        if (dtype == ENGINE_DTYPE_F32)
            k->rmsnorm_forward_f32(static_cast<const float*>(x), static_cast<const float*>(w), begin, end, n, eps, mode,
                                   static_cast<float*>(y), inv_rms, stream);
        else
            k->rmsnorm_forward_bf16(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(w), begin, end, n, eps, mode,
                                    static_cast<uint16_t*>(y), inv_rms, stream);
    });
    return ENGINE_OK;
}

int32_t engine_rmsnorm_backward(const void* x, const void* w, const float* inv_rms, const void* dy, int32_t dtype, int64_t rows,
                                int64_t n, int32_t mode, void* dx, void* dw)
{
    if (rows < 0 || n <= 0 || !valid_dtype(dtype) || (mode != ENGINE_NORM_WEIGHT && mode != ENGINE_NORM_UNIT_OFFSET))
        return ENGINE_BAD_ARGUMENT;
    if (!dw) return ENGINE_BAD_ARGUMENT;
    if (rows == 0)
    {
        std::memset(dw, 0, static_cast<size_t>(n) * element_size(dtype));
        return ENGINE_OK;
    }
    if (!x || !w || !inv_rms || !dy || !dx) return ENGINE_BAD_ARGUMENT;
    const EngineFusedKernels* k = fused_kernels_for(current_isa());
    // The weight gradient is summed per chunk of rows, then the chunks in order: the chunks depend only on the
    // shape, so the result has the same bits for any thread count.
    constexpr int64_t kMaxChunks = 64;
    const int64_t chunks = std::min<int64_t>(kMaxChunks, rows);
    const int64_t chunk_rows = (rows + chunks - 1) / chunks;
    // Reused by the calling thread across calls: a fresh vector per call (128 KiB at 64 chunks × 512, glibc's initial
    // mmap threshold) may come from mmap, and then each backward pays its page faults and an munmap.
    // (The workers get its data pointer: a thread_local named inside their lambda would be their own, empty, one.)
    thread_local std::vector<float> partial_storage;
    partial_storage.assign(static_cast<size_t>(chunks * n), 0.0f);
    float* const partial = partial_storage.data();
    const int32_t stream = stream_output(dx, rows * n * element_size(dtype), n * element_size(dtype));
    engine::parallel_for(0, chunks, 1, [&](int64_t c_begin, int64_t c_end) {
        for (int64_t c = c_begin; c < c_end; ++c)
        {
            const int64_t begin = c * chunk_rows, end = std::min(rows, begin + chunk_rows);
            if (begin >= end) continue;
            float* acc = partial + c * n;
            if (dtype == ENGINE_DTYPE_F32)
                k->rmsnorm_backward_f32(static_cast<const float*>(x), static_cast<const float*>(w), inv_rms,
                                        static_cast<const float*>(dy), begin, end, n, mode, static_cast<float*>(dx), acc, stream);
            else
                k->rmsnorm_backward_bf16(static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(w), inv_rms,
                                         static_cast<const uint16_t*>(dy), begin, end, n, mode, static_cast<uint16_t*>(dx), acc, stream);
        }
    });
    // dw is written in the weight's dtype (bf16: rounded once, from the fp32 sum), so no conversion op follows.
    for (int64_t j = 0; j < n; ++j)
    {
        float sum = 0.0f;
        for (int64_t c = 0; c < chunks; ++c) sum += partial[c * n + j];
        if (dtype == ENGINE_DTYPE_F32)
            static_cast<float*>(dw)[j] = sum;
        else
            static_cast<uint16_t*>(dw)[j] = bf16_nearest_even(sum);
    }
    return ENGINE_OK;
}

int32_t engine_rope_strided(const void* src, int64_t src_batch_stride, int64_t src_token_stride, int64_t src_head_stride,
                            void* dst, int32_t dtype, const float* cos, const float* sin, int64_t batch, int64_t seq,
                            int64_t heads, int64_t head_dim, int32_t inverse)
{
    if (batch < 0 || seq < 0 || heads <= 0 || head_dim <= 0 || head_dim % 2 != 0 || !valid_dtype(dtype) ||
        src_batch_stride < 0 || src_token_stride < 0 || src_head_stride < 0)
        return ENGINE_BAD_ARGUMENT;
    const int64_t tokens = batch * seq;
    if (tokens == 0) return ENGINE_OK;
    if (!src || !dst || !cos || !sin) return ENGINE_BAD_ARGUMENT;
    const EngineFusedKernels* k = fused_kernels_for(current_isa());
    // In place the lines were just read (in cache): plain stores. Into a fresh buffer: streamed when large.
    const int32_t stream = dst == src ? 0 : stream_output(dst, tokens * heads * head_dim * element_size(dtype), head_dim / 2 * element_size(dtype));
    parallel_rows(tokens, heads * head_dim, [&](int64_t begin, int64_t end) {
        if (dtype == ENGINE_DTYPE_F32)
            k->rope_f32(static_cast<const float*>(src), src_batch_stride, src_token_stride, src_head_stride, static_cast<float*>(dst),
                        cos, sin, begin, end, seq, heads, head_dim, inverse, stream);
        else
            k->rope_bf16(static_cast<const uint16_t*>(src), src_batch_stride, src_token_stride, src_head_stride,
                         static_cast<uint16_t*>(dst), cos, sin, begin, end, seq, heads, head_dim, inverse, stream);
    });
    return ENGINE_OK;
}

int32_t engine_rope(void* x, int32_t dtype, const float* cos, const float* sin, int64_t tokens, int64_t heads, int64_t head_dim,
                    int32_t inverse)
{
    if (tokens < 0 || heads <= 0 || head_dim <= 0) return ENGINE_BAD_ARGUMENT;
    return engine_rope_strided(x, tokens * heads * head_dim, heads * head_dim, head_dim, x, dtype, cos, sin, 1, tokens, heads,
                               head_dim, inverse);
}

int32_t engine_glu_forward(int32_t act, const void* gate, const void* up, int32_t dtype, int64_t count, void* h)
{
    if (count < 0 || (act != ENGINE_GLU_SWIGLU && act != ENGINE_GLU_GEGLU) || !valid_dtype(dtype)) return ENGINE_BAD_ARGUMENT;
    if (count == 0) return ENGINE_OK;
    if (!gate || !up || !h) return ENGINE_BAD_ARGUMENT;
    const EngineFusedKernels* k = fused_kernels_for(current_isa());
    const int32_t stream = stream_output(h, count * element_size(dtype), 0);
    engine::parallel_for(0, (count + kGluBlock - 1) / kGluBlock, (int64_t{1} << 15) / kGluBlock, [&](int64_t block_begin, int64_t block_end) {
        const int64_t begin = block_begin * kGluBlock, end = std::min(count, block_end * kGluBlock);
        if (dtype == ENGINE_DTYPE_F32)
            k->glu_forward_f32[act](static_cast<const float*>(gate), static_cast<const float*>(up), begin, end, static_cast<float*>(h),
                                    stream);
        else
            k->glu_forward_bf16[act](static_cast<const uint16_t*>(gate), static_cast<const uint16_t*>(up), begin, end,
                                     static_cast<uint16_t*>(h), stream);
    });
    return ENGINE_OK;
}

int32_t engine_glu_backward(int32_t act, const void* gate, const void* up, const void* dh, int32_t dtype, int64_t count,
                            void* d_gate, void* d_up)
{
    if (count < 0 || (act != ENGINE_GLU_SWIGLU && act != ENGINE_GLU_GEGLU) || !valid_dtype(dtype)) return ENGINE_BAD_ARGUMENT;
    if (count == 0) return ENGINE_OK;
    if (!gate || !up || !dh || !d_gate || !d_up) return ENGINE_BAD_ARGUMENT;
    const EngineFusedKernels* k = fused_kernels_for(current_isa());
    const int32_t stream = stream_output(d_gate, count * element_size(dtype), 0) & stream_output(d_up, count * element_size(dtype), 0);
    engine::parallel_for(0, (count + kGluBlock - 1) / kGluBlock, (int64_t{1} << 15) / kGluBlock, [&](int64_t block_begin, int64_t block_end) {
        const int64_t begin = block_begin * kGluBlock, end = std::min(count, block_end * kGluBlock);
        if (dtype == ENGINE_DTYPE_F32)
            k->glu_backward_f32[act](static_cast<const float*>(gate), static_cast<const float*>(up), static_cast<const float*>(dh),
                                     begin, end, static_cast<float*>(d_gate), static_cast<float*>(d_up), stream);
        else
            k->glu_backward_bf16[act](static_cast<const uint16_t*>(gate), static_cast<const uint16_t*>(up),
                                      static_cast<const uint16_t*>(dh), begin, end, static_cast<uint16_t*>(d_gate),
                                      static_cast<uint16_t*>(d_up), stream);
    });
    return ENGINE_OK;
}

int32_t engine_advise_huge_pages(void* p, int64_t bytes)
{
    constexpr uintptr_t kHuge = uintptr_t{2} << 20;
    if (!p || bytes <= 0) return EINVAL;
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes)) & ~(kHuge - 1);
    if (end <= begin) return 0;
#ifdef MADV_HUGEPAGE
    if (madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE) != 0) return errno;
#endif
    return 0;
}

} // extern "C"
