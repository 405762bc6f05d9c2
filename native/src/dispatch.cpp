// The exported C API: picks the row kernels for this CPU at run time and spreads rows over threads.
#include "engine_native.h"
#include "row_kernels.h"
#include "thread_pool.h"

#include <sys/mman.h>
#include <cerrno>
#include <cstdint>
#include <algorithm>
#include <atomic>

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

bool valid_dtype(int32_t dtype) { return dtype == ENGINE_DTYPE_F32 || dtype == ENGINE_DTYPE_BF16; }

} // namespace

extern "C" {

int32_t engine_native_abi_version(void) { return 2; }

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
