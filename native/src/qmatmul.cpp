// C ABI of the dequantizing matmul (engine_native.h): checks the arguments and picks the ISA's kernel.
#include "engine_native.h"
#include "qmatmul.h"

namespace {

bool valid_dtype(int32_t dtype) { return dtype == ENGINE_DTYPE_F32 || dtype == ENGINE_DTYPE_BF16; }

bool cpu_has_avx512bf16()
{
#if defined(ENGINE_HAVE_AVX512BF16)
    static const bool has = __builtin_cpu_supports("avx512bf16");
    return has;
#else
    return false;
#endif
}

int32_t run(const QmmProblem& p)
{
    if (p.m < 0 || !valid_dtype(p.a_dtype) || !valid_dtype(p.c_dtype) || !engine::quant::valid(p.w)) return ENGINE_BAD_ARGUMENT;
    if (p.m == 0) return ENGINE_OK;
    if (!p.a || !p.c) return ENGINE_BAD_ARGUMENT;
    switch (engine_cpu_isa())
    {
#if defined(ENGINE_HAVE_AVX512)
    case ENGINE_ISA_AVX512:
        if (p.a_dtype == ENGINE_DTYPE_BF16 && cpu_has_avx512bf16()) engine_qmatmul_avx512bf16(p);
        else engine_qmatmul_avx512(p);
        break;
#endif
#if defined(ENGINE_HAVE_AVX2)
    case ENGINE_ISA_AVX2: engine_qmatmul_avx2(p); break;
#endif
    default: engine_qmatmul_scalar(p); break;
    }
    return ENGINE_OK;
}

} // namespace

extern "C" {

int32_t engine_qmatmul_forward(const void* x, int32_t x_dtype, int64_t m, const EngineQuantWeight* q, void* y, int32_t out_dtype)
{
    if (!q) return ENGINE_BAD_ARGUMENT;
    return run(QmmProblem{x, x_dtype, m, q->cols, q->rows, q, false, y, out_dtype});
}

int32_t engine_qmatmul_backward_input(const void* dy, int32_t dy_dtype, int64_t m, const EngineQuantWeight* q, void* dx,
                                      int32_t out_dtype)
{
    if (!q) return ENGINE_BAD_ARGUMENT;
    return run(QmmProblem{dy, dy_dtype, m, q->rows, q->cols, q, true, dx, out_dtype});
}

int32_t engine_qmatmul_bf16_dot_available(void) { return cpu_has_avx512bf16() ? 1 : 0; }

} // extern "C"
