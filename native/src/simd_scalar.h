// One-lane "vector" for the portable fallback; same exp polynomial as the SIMD paths.
#pragma once
#include <stdint.h>
#include <string.h>

namespace {

struct SimdScalar
{
    static constexpr int Width = 1;
    using V = float;

    static float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
    static uint32_t float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

    static V zero() { return 0.0f; }
    static V set1(float x) { return x; }
    static V load(const float* p) { return *p; }
    static V load(const uint16_t* p) { return bits_to_float(static_cast<uint32_t>(*p) << 16); }
    template <class T>
    static void load2(const T* p, V& a, V& b)
    {
        a = load(p);
        b = load(p + 1);
    }
    static void store(float* p, V v) { *p = v; }
    static void store(uint16_t* p, V v)
    {
        uint32_t u = float_to_bits(v);
        *p = static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16); // round to nearest even
    }
    template <class T>
    static void store2(T* p, V a, V b)
    {
        store(p, a);
        store(p + 1, b);
    }
    template <class T>
    static void stream(T* p, V v) { store(p, v); }
    template <class T>
    static void stream2(T* p, V a, V b) { store2(p, a, b); }
    static void fence() {}
    static V add(V a, V b) { return a + b; }
    static V sub(V a, V b) { return a - b; }
    static V mul(V a, V b) { return a * b; }
    static V fma(V a, V b, V c) { return a * b + c; }
    static V div(V a, V b) { return a / b; }
    static V recip(V d) { return 1.0f / d; }
    static V fmadd(V a, V b, V c) { return a * b + c; }
    // x rounded to the nearest bf16 (even on ties) and widened back: what a bf16 tensor would hold.
    static V round_bf16(V v)
    {
        uint32_t u = float_to_bits(v);
        return bits_to_float((u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u);
    }
    static V sqrt(V a) { return __builtin_sqrtf(a); }
    static V max(V a, V b) { return a > b ? a : b; }
    static float hmax(V a) { return a; }
    static float hsum(V a) { return a; }
    static V exp_nonpositive(V x) { return exp(x); } // the upper clamp is one compare: no second copy

    // exp for x <= 88: 2^n * (1 + r + r^2 P(r)) with |r| <= ln2/2 (Cephes expf coefficients); 0 below -87.3.
    static V exp(V x)
    {
        if (!(x >= -87.3f)) return 0.0f; // also -inf
        if (x > 88.0f) x = 88.0f;
        float n = static_cast<float>(static_cast<int32_t>(x * 1.44269504f + (x >= 0 ? 0.5f : -0.5f)));
        float r = x - n * 0.693359375f;
        r = r - n * -2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        float y = p * (r * r) + r + 1.0f;
        return y * bits_to_float(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
    }
};

} // namespace
