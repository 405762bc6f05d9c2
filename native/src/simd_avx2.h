// 8 fp32 lanes (AVX2 + FMA). Compiled only into isa_avx2.cpp.
#pragma once
#include <immintrin.h>
#include <stdint.h>

namespace {

struct SimdAvx2
{
    static constexpr int Width = 8;
    using V = __m256;

    static V zero() { return _mm256_setzero_ps(); }
    static V set1(float x) { return _mm256_set1_ps(x); }
    static V load(const float* p) { return _mm256_loadu_ps(p); }
    static V load(const uint16_t* p)
    {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
    // 2W consecutive logits as two vectors (bf16: even and odd elements, one op each; see simd_avx512.h).
    static void load2(const float* p, V& a, V& b)
    {
        a = _mm256_loadu_ps(p);
        b = _mm256_loadu_ps(p + Width);
    }
    static void load2(const uint16_t* p, V& a, V& b)
    {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        a = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
        b = _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
    }
    static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
    // Streaming stores (see SimdAvx512): f32 32-byte aligned; bf16 falls back to plain stores (16-byte pieces).
    static void stream(float* p, V v) { _mm256_stream_ps(p, v); }
    static void stream(uint16_t* p, V v) { store(p, v); }
    static void stream2(float* p, V a, V b)
    {
        _mm256_stream_ps(p, a);
        _mm256_stream_ps(p + Width, b);
    }
    static void stream2(uint16_t* p, V a, V b) { store2(p, a, b); }
    static void fence() { _mm_sfence(); }
    // The inverse of load2 (a: even elements, b: odd ones for bf16), rounding to nearest even.
    static void store2(float* p, V a, V b)
    {
        _mm256_storeu_ps(p, a);
        _mm256_storeu_ps(p + Width, b);
    }
    static void store2(uint16_t* p, V a, V b)
    {
        const __m256i half = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1);
        __m256i ua = _mm256_castps_si256(a), ub = _mm256_castps_si256(b);
        ua = _mm256_add_epi32(ua, _mm256_add_epi32(half, _mm256_and_si256(_mm256_srli_epi32(ua, 16), one)));
        ub = _mm256_add_epi32(ub, _mm256_add_epi32(half, _mm256_and_si256(_mm256_srli_epi32(ub, 16), one)));
        const __m256i merged = _mm256_or_si256(_mm256_and_si256(ub, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))),
                                               _mm256_srli_epi32(ua, 16));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), merged);
    }
    static void store(uint16_t* p, V v)
    {
        __m256i u = _mm256_castps_si256(v);
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
        u = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
        // packus works per 128-bit lane: pack, then gather the two useful quarters.
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(u, u), 0x08);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
    }
    static V add(V a, V b) { return _mm256_add_ps(a, b); }
    static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
    static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    static V div(V a, V b) { return _mm256_div_ps(a, b); }
    static V recip(V d) { return _mm256_div_ps(_mm256_set1_ps(1.0f), d); }
    static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
    // x rounded to the nearest bf16 (even on ties) and widened back: what a bf16 tensor would hold.
    static V round_bf16(V v)
    {
        __m256i u = _mm256_castps_si256(v);
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
        u = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)));
        return _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
    }
    static V sqrt(V a) { return _mm256_sqrt_ps(a); }
    static V max(V a, V b) { return _mm256_max_ps(a, b); }
    static float hmax(V a)
    {
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        return _mm_cvtss_f32(m);
    }
    static float hsum(V a)
    {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        return _mm_cvtss_f32(s);
    }

    // exp for x <= 88 (same polynomial as the other paths); 2^n built in the exponent field, 0 below -87.3.
    static V exp(V x) { return exp_impl<true>(x); }
    // The same for x <= 88 already known (x - max in the forward): one clamp fewer.
    static V exp_nonpositive(V x) { return exp_impl<false>(x); }

    template <bool ClampHigh>
    static V exp_impl(V x)
    {
        V underflow = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_NGE_UQ); // also -inf and NaN
        x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
        if (ClampHigh) x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
        V n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        V r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
        r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
        V p = _mm256_set1_ps(1.9875691500e-4f);
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
        V y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
        __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
        return _mm256_andnot_ps(underflow, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
    }
};

} // namespace
