// The dequantizing matmul for bf16 activations with AVX512-BF16's dot product (vdpbf16ps: 16 lanes, each adding
// two bf16 products to an fp32 accumulator). Panels hold the weight as bf16 pairs along the reduced dimension,
// so one 32-bit broadcast of A (two consecutive activations) meets one panel row pair. Compiled with
// -mavx512bf16 (CMakeLists.txt); used only where the CPU has it (qmatmul.cpp).
#include <immintrin.h>
#include "qmatmul.h"

namespace {

struct Bf16DotPolicy
{
    using PanelT = uint32_t;
    using APackT = uint32_t;
    static constexpr int64_t Kc = 4096; // 256 KiB of bf16 pairs (even, so only the last panel can be odd)
    static constexpr int Mr = 12;       // 12 x 2 zmm accumulators
    static int64_t panel_elements(int64_t rc) { return (rc + 1) / 2 * kCols; }
    static int64_t a_elements(int64_t r) { return (r + 1) / 2 * Mr; }
    static int64_t a_offset(int64_t r0) { return r0 / 2 * Mr; }

    // dst[q * Mr + i] = the pair (A[m0 + i, 2q], A[m0 + i, 2q + 1]); zeros past the rows and past an odd end.
    static void pack_a(const QmmProblem& p, int64_t m0, int64_t rows, uint32_t* dst)
    {
        const int64_t pairs = (p.r + 1) / 2;
        for (int i = 0; i < Mr; ++i)
        {
            const uint16_t* a = static_cast<const uint16_t*>(p.a) + (m0 + i) * p.r;
            for (int64_t q = 0; q < pairs; ++q)
            {
                uint32_t pair = 0;
                if (i < rows)
                    pair = static_cast<uint32_t>(a[2 * q]) | (2 * q + 1 < p.r ? static_cast<uint32_t>(a[2 * q + 1]) << 16 : 0u);
                dst[q * Mr + i] = pair;
            }
        }
    }

    static void pack(const QmmProblem& p, int64_t r0, int64_t rc, int64_t j0, int64_t jc, uint32_t* dst)
    {
        engine::quant::pack_panel_bf16_pairs(*p.w, p.input_gradient, r0, rc, j0, jc, dst);
    }

    static void kernel(const uint32_t* a, const uint32_t* panel, int64_t rc, float* c, bool accumulate)
    {
        __m512 acc[Mr][2];
        for (int i = 0; i < Mr; ++i)
            for (int v = 0; v < 2; ++v) acc[i][v] = accumulate ? _mm512_loadu_ps(c + i * kCols + v * 16) : _mm512_setzero_ps();
        const int64_t pairs = (rc + 1) / 2;
        for (int64_t q = 0; q < pairs; ++q)
        {
            const __m512i b0 = _mm512_loadu_si512(panel + q * kCols);
            const __m512i b1 = _mm512_loadu_si512(panel + q * kCols + 16);
            for (int i = 0; i < Mr; ++i)
            {
                const __m512i ai = _mm512_set1_epi32(static_cast<int>(a[q * Mr + i]));
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], (__m512bh)ai, (__m512bh)b0);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], (__m512bh)ai, (__m512bh)b1);
            }
        }
        for (int i = 0; i < Mr; ++i)
            for (int v = 0; v < 2; ++v) _mm512_storeu_ps(c + i * kCols + v * 16, acc[i][v]);
    }
};

} // namespace

void engine_qmatmul_avx512bf16(const QmmProblem& p) { qmatmul_run<Bf16DotPolicy>(p); }
