// 16 fp32 lanes (AVX-512F/BW/DQ/VL). Compiled only into isa_avx512.cpp.
#pragma once
#include <immintrin.h>
#include <stdint.h>

namespace {

struct SimdAvx512
{
    static constexpr int Width = 16;
    using V = __m512;

    static V zero() { return _mm512_setzero_ps(); }
    static V set1(float x) { return _mm512_set1_ps(x); }
    static V load(const float* p) { return _mm512_loadu_ps(p); }
    static V load(const uint16_t* p)
    {
        __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    }
    // 2W consecutive logits as two vectors. For bf16 one load and one op per vector: the even elements are the
    // low halves of the 32-bit lanes shifted up, the odd ones the high halves masked, so the two vectors hold
    // elements in the order (0, 2, 4, ...) and (1, 3, 5, ...): fine for sums and maxima.
    static void load2(const float* p, V& a, V& b)
    {
        a = _mm512_loadu_ps(p);
        b = _mm512_loadu_ps(p + Width);
    }
    static void load2(const uint16_t* p, V& a, V& b)
    {
        const __m512i w = _mm512_loadu_si512(p);
        a = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
        b = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
    }
    static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
    // The inverse of load2: a holds elements (0, 2, 4, ...), b (1, 3, 5, ...). For bf16 each is rounded in place
    // (nearest even) and the two merged by their halves into one store, with no cross-lane packing.
    static void store2(float* p, V a, V b)
    {
        _mm512_storeu_ps(p, a);
        _mm512_storeu_ps(p + Width, b);
    }
    // fp32 bits rounded to nearest even at bit 16, as torch converts fp32 to bf16: the bf16 is the high half.
    static __m512i rounded_bf16_high(V v)
    {
        const __m512i u = _mm512_castps_si512(v);
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        return _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    }
    // 32 bf16 values in element order from a (even elements) and b (odd): (b & 0xFFFF0000) | (a >> 16), one vpternlog.
    static __m512i merged_bf16_pairs(V a, V b)
    {
        return _mm512_ternarylogic_epi32(_mm512_set1_epi32(static_cast<int>(0xFFFF0000u)), rounded_bf16_high(b),
                                         _mm512_srli_epi32(rounded_bf16_high(a), 16), 0xCA);
    }
    static __m256i packed_bf16(V v) { return _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded_bf16_high(v), 16)); }
    static void store2(uint16_t* p, V a, V b) { _mm512_storeu_si512(p, merged_bf16_pairs(a, b)); }
    static void store(uint16_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), packed_bf16(v)); }
    // Non-temporal (streaming) stores for large outputs: the line is written without first being read (no
    // read-for-ownership), which is most of the cost of writing a fresh buffer. p must be 64-byte aligned for f32,
    // 32-byte aligned for bf16 (stream2: 64). The caller fences (sfence) before its results are handed on.
    static void stream(float* p, V v) { _mm512_stream_ps(p, v); }
    static void stream(uint16_t* p, V v) { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), packed_bf16(v)); }
    static void stream2(float* p, V a, V b)
    {
        _mm512_stream_ps(p, a);
        _mm512_stream_ps(p + Width, b);
    }
    static void stream2(uint16_t* p, V a, V b) { _mm512_stream_si512(reinterpret_cast<__m512i*>(p), merged_bf16_pairs(a, b)); }
    static void fence() { _mm_sfence(); }
    static V add(V a, V b) { return _mm512_add_ps(a, b); }
    static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
    static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
    static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    static V div(V a, V b) { return _mm512_div_ps(a, b); }
    // 1 / d: the 14-bit estimate and one Newton step (about 2^-27 relative; a quarter of a divide's cost).
    static V recip(V d)
    {
        const V r = _mm512_rcp14_ps(d);
        return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
    }
    static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
    // x rounded to the nearest bf16 (even on ties) and widened back: what a bf16 tensor would hold.
    static V round_bf16(V v)
    {
        return _mm512_castsi512_ps(_mm512_and_si512(rounded_bf16_high(v), _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
    }
    static V sqrt(V a) { return _mm512_sqrt_ps(a); }
    static V max(V a, V b) { return _mm512_max_ps(a, b); }
    static float hmax(V a) { return _mm512_reduce_max_ps(a); }
    static float hsum(V a) { return _mm512_reduce_add_ps(a); }

    // exp for x <= 88: 2^n * (1 + r + r^2 P(r)), |r| <= ln2/2 (Cephes expf coefficients). scalef applies 2^n
    // with correct underflow, so clamping at -104 (below the smallest denormal) gives exactly 0 for -inf.
    static V exp(V x) { return exp_nonpositive(_mm512_min_ps(x, _mm512_set1_ps(88.0f))); }

    // The same for x <= 88 already known (x - max in the forward): one clamp fewer.
    static V exp_nonpositive(V x)
    {
        x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
        V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
        r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
        V p = _mm512_set1_ps(1.9875691500e-4f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
        V y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
        return _mm512_scalef_ps(y, n);
    }
};

} // namespace
