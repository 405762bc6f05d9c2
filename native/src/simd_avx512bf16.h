// SimdAvx512 with AVX512-BF16's conversions for bf16 outputs: one vcvtne2ps2bf16 rounds two fp32 vectors (nearest
// even, as torch rounds) and one vpermw puts them back in element order, where the plain AVX-512 store spends ten
// integer ops per 32 values. In the bf16 gated activations those stores were the largest single cost after exp.
// Differences from torch's rounding: fp32 denormals become signed zeros (the instruction reads and writes no
// denormals), and a NaN stays a quiet NaN. Compiled only into isa_avx512bf16.cpp, used only where the CPU has it.
#pragma once
#include "simd_avx512.h"

namespace {

struct SimdAvx512Bf16 : SimdAvx512
{
    using SimdAvx512::store;
    using SimdAvx512::store2;
    using SimdAvx512::stream;
    using SimdAvx512::stream2;

    // a holds elements (0, 2, 4, ...), b (1, 3, 5, ...) (load2's split): converted as [a | b], then interleaved.
    static __m512i interleaved_bf16(V a, V b)
    {
        const __m512i index = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                               23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        return _mm512_permutexvar_epi16(index, (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
    // x rounded to the nearest bf16 and widened back (RMSNorm's x̂ before the weight, as HF rounds it).
    static V round_bf16(V v) { return _mm512_cvtpbh_ps(_mm512_cvtneps_pbh(v)); }
    static void store2(uint16_t* p, V a, V b) { _mm512_storeu_si512(p, interleaved_bf16(a, b)); }
    static void stream2(uint16_t* p, V a, V b) { _mm512_stream_si512(reinterpret_cast<__m512i*>(p), interleaved_bf16(a, b)); }
    static void store(uint16_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v)); }
    static void stream(uint16_t* p, V v)
    {
        _mm256_stream_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v));
    }
};

} // namespace
