// Fused RMSNorm, RoPE and gated-MLP activations (SwiGLU, GeGLU), written once over a SIMD abstraction S
// (SimdScalar, SimdAvx2, SimdAvx512) and an element type T (float, or uint16_t holding bf16 bits). Every kernel
// computes in fp32 and rounds once on store. Included by each ISA translation unit inside an anonymous namespace.
#pragma once
#include "simd_scalar.h"
#include "row_kernels.h"
#include <stdint.h>
#include <type_traits>
#include <vector>

namespace {

template <class T>
constexpr bool kIsBf16 = std::is_same_v<T, uint16_t>;

// Calls f(Q{}, i) for i in [begin, end): vectors of S::Width, then single elements with SimdScalar, so the
// vector body and its tail are one piece of code.
template <class S, class F>
inline void for_lanes(int64_t begin, int64_t end, F&& f)
{
    int64_t i = begin;
    for (; i + S::Width <= end; i += S::Width) f(S{}, i);
    for (; i < end; ++i) f(SimdScalar{}, i);
}

// Output stores: plain, or streaming (NT) where the dispatcher found the output large and aligned (a vector store
// of Width elements lands on a 64-byte boundary; tails and SimdScalar lanes store plainly).
template <bool NT, class Q, class T>
inline void put(T* p, typename Q::V v)
{
    if constexpr (NT) Q::stream(p, v);
    else Q::store(p, v);
}
template <bool NT, class Q, class T>
inline void put2(T* p, typename Q::V a, typename Q::V b)
{
    if constexpr (NT) Q::stream2(p, a, b);
    else Q::store2(p, a, b);
}
// Runs body(std::true_type{}) or body(std::false_type{}) by the run-time flag, so each loop is compiled both ways; the
// streaming variant ends with a store fence, so its results are visible before the job reports done.
template <class S, class F>
inline void with_stream(int32_t stream, F&& body)
{
    if (stream)
    {
        body(std::true_type{});
        S::fence();
    }
    else body(std::false_type{});
}

// The kernels walk 2W elements at a time through load2/store2: for bf16 that is one 512-bit load split into
// even and odd elements and one merged store, instead of a widening load and a narrowing pack per W elements (the
// packs cost more than the arithmetic). Every input and output uses the same split, so elements still line up.
// The last element of an odd-length range: a pair whose second half is neither read nor written.
struct SimdScalarLast : SimdScalar
{
    template <class T>
    static void load2(const T* p, V& a, V& b)
    {
        a = load(p);
        b = 0.0f;
    }
    template <class T>
    static void store2(T* p, V a, V) { store(p, a); }
};

template <class S, class F>
inline void for_pairs(int64_t begin, int64_t end, F&& f)
{
    int64_t i = begin;
    for (; i + 2 * S::Width <= end; i += 2 * S::Width) f(S{}, i);
    for (; i < end; i += 2) // SimdScalar's pairs are elements i and i + 1
    {
        if (i + 1 < end) f(SimdScalar{}, i);
        else f(SimdScalarLast{}, i);
    }
}

// ---- RMSNorm -------------------------------------------------------------------------------------------------
// mode ENGINE_NORM_WEIGHT (HF Llama):   y = w · bf16(x̂)        (x̂ rounded to T first, as HF casts before scaling)
// mode ENGINE_NORM_UNIT_OFFSET (Gemma): y = (1 + w) · x̂       (in fp32, rounded once)
// with x̂ = x · inv, inv = 1 / sqrt(mean(x²) + eps). Only inv (one float per row) is saved for the backward.

template <class S, class T>
float sum_of_squares(const T* x, int64_t n)
{
    using V = typename S::V;
    V acc0 = S::zero(), acc1 = S::zero();
    int64_t i = 0;
    for (; i + 2 * S::Width <= n; i += 2 * S::Width)
    {
        V a, b;
        S::load2(x + i, a, b);
        acc0 = S::fmadd(a, a, acc0);
        acc1 = S::fmadd(b, b, acc1);
    }
    float s = S::hsum(S::add(acc0, acc1));
    for (; i < n; ++i)
    {
        const float v = SimdScalar::load(x + i);
        s += v * v;
    }
    return s;
}

// The weight as fp32 w' = w + offset (offset 1 for Gemma's form), stored in the order load2 hands out elements (for
// bf16 each block of 2W holds the even elements, then the odd ones), so a row's loop reads it with a float load2: no
// conversion and no add per row. Converted once per range of rows into this thread's buffer (the same fp32 sums as
// doing it per row, so the same bits).
template <class S, class T>
const float* weight_in_pair_order(const T* w, int64_t n, float offset)
{
    thread_local std::vector<float> buffer;
    buffer.resize(static_cast<size_t>(n));
    float* wf = buffer.data();
    for_pairs<S>(0, n, [&](auto q, int64_t i) {
        using Q = decltype(q);
        typename Q::V a, b;
        Q::load2(w + i, a, b);
        Q::store2(wf + i, Q::add(a, Q::set1(offset)), Q::add(b, Q::set1(offset)));
    });
    return wf;
}

template <class S, class T>
void rmsnorm_forward_rows(const T* x, const T* w, int64_t row_begin, int64_t row_end, int64_t n, float eps, int32_t mode,
                          T* y, float* inv_rms, int32_t stream)
{
    const bool unit_offset = mode == ENGINE_NORM_UNIT_OFFSET;
    const float* wf = weight_in_pair_order<S>(w, n, unit_offset ? 1.0f : 0.0f);
    with_stream<S>(stream, [&](auto nt) {
    for (int64_t r = row_begin; r < row_end; ++r)
    {
        const T* xr = x + r * n;
        T* yr = y + r * n;
        const float inv = 1.0f / __builtin_sqrtf(sum_of_squares<S>(xr, n) / static_cast<float>(n) + eps);
        inv_rms[r] = inv;
        for_pairs<S>(0, n, [&](auto q, int64_t i) {
            using Q = decltype(q);
            using QV = typename Q::V;
            QV x0, x1, w0, w1;
            Q::load2(xr + i, x0, x1);
            Q::load2(wf + i, w0, w1);
            auto out = [&](QV xv, QV wv) {
                QV xhat = Q::mul(xv, Q::set1(inv));
                if constexpr (kIsBf16<T>)
                    if (!unit_offset) xhat = Q::round_bf16(xhat);
                return Q::mul(xhat, wv);
            };
            put2<decltype(nt)::value && Q::Width != 1, Q>(yr + i, out(x0, w0), out(x1, w1));
        });
    }
    });
}

// dx = inv · (ĝ − x̂ · mean(ĝ · x̂)) with ĝ = dy · w' (w' = w, or 1 + w); dw_acc += dy · x̂ (fp32, per chunk of rows).
// dx may be dy itself: each element of dy is read before the same element of dx is written.
template <class S, class T>
void rmsnorm_backward_rows(const T* x, const T* w, const float* inv_rms, const T* dy, int64_t row_begin, int64_t row_end,
                           int64_t n, int32_t mode, T* dx, float* dw_acc, int32_t stream)
{
    using V = typename S::V;
    const float* wf = weight_in_pair_order<S>(w, n, mode == ENGINE_NORM_UNIT_OFFSET ? 1.0f : 0.0f);
    with_stream<S>(stream, [&](auto nt) {
    for (int64_t r = row_begin; r < row_end; ++r)
    {
        const T* xr = x + r * n;
        const T* gr = dy + r * n;
        T* dxr = dx + r * n;
        const float inv = inv_rms[r];
        // Σ ĝ·x (the x̂ factor inv is applied once after the sum).
        V acc0 = S::zero(), acc1 = S::zero();
        int64_t i = 0;
        for (; i + 2 * S::Width <= n; i += 2 * S::Width)
        {
            V g0, g1, w0, w1, x0, x1;
            S::load2(gr + i, g0, g1);
            S::load2(wf + i, w0, w1);
            S::load2(xr + i, x0, x1);
            acc0 = S::fmadd(S::mul(g0, w0), x0, acc0);
            acc1 = S::fmadd(S::mul(g1, w1), x1, acc1);
        }
        float dot = S::hsum(S::add(acc0, acc1));
        for (; i < n; ++i) dot += SimdScalar::load(gr + i) * wf[i] * SimdScalar::load(xr + i);
        const float c = dot * inv * inv / static_cast<float>(n); // mean(ĝ·x̂) · inv, applied to x (not x̂) below
        const float minus_c_inv = -(c * inv);
        // dw_acc is fp32 and goes through load2/store2 of floats (consecutive halves), so for bf16 a vector block
        // of 2W holds the even elements' sums, then the odd ones': put back in order after the last row.
        for_pairs<S>(0, n, [&](auto q, int64_t j) {
            using Q = decltype(q);
            using QV = typename Q::V;
            QV x0, x1, g0, g1, w0, w1, a0, a1;
            Q::load2(xr + j, x0, x1);
            Q::load2(gr + j, g0, g1);
            Q::load2(wf + j, w0, w1);
            Q::load2(dw_acc + j, a0, a1);
            Q::store2(dw_acc + j, Q::fmadd(g0, Q::mul(x0, Q::set1(inv)), a0), Q::fmadd(g1, Q::mul(x1, Q::set1(inv)), a1));
            // inv · (ĝ − x · c) as ĝ · inv − x · (c · inv): the subtraction folded into a fused multiply-add.
            auto dxv = [&](QV xv, QV gv, QV wv) { return Q::fmadd(xv, Q::set1(minus_c_inv), Q::mul(Q::mul(gv, wv), Q::set1(inv))); };
            put2<decltype(nt)::value && Q::Width != 1, Q>(dxr + j, dxv(x0, g0, w0), dxv(x1, g1, w1));
        });
    }
    });
    if constexpr (kIsBf16<T> && S::Width > 1)
    {
        float block[2 * S::Width];
        for (int64_t j = 0; j + 2 * S::Width <= n; j += 2 * S::Width)
        {
            for (int k = 0; k < S::Width; ++k)
            {
                block[2 * k] = dw_acc[j + k];
                block[2 * k + 1] = dw_acc[j + S::Width + k];
            }
            for (int k = 0; k < 2 * S::Width; ++k) dw_acc[j + k] = block[k];
        }
    }
}

// ---- RoPE ----------------------------------------------------------------------------------------------------
// src: [batch, seq, heads, head_dim] at element strides (sb, st, sh) with head_dim contiguous; dst: the same shape,
// contiguous. dst may be src itself with src's contiguous strides (in place: both halves are read before either is
// written). cos/sin: [batch · seq, head_dim / 2] fp32 (HF's rotate-half layout repeats the frequencies over the two
// halves, so half a row is the whole table). inverse = 1 rotates back (the backward). Reading a strided gradient
// straight into a fresh output is the backward's one pass: no separate copy to make it contiguous.
template <class S, class T>
void rope_rows(const T* src, int64_t sb, int64_t st, int64_t sh, T* dst, const float* cos, const float* sin,
               int64_t token_begin, int64_t token_end, int64_t seq, int64_t heads, int64_t head_dim, int32_t inverse,
               int32_t stream)
{
    const int64_t half = head_dim / 2;
    const float sign = inverse ? -1.0f : 1.0f;
    with_stream<S>(stream, [&](auto nt) {
    for (int64_t t = token_begin; t < token_end; ++t)
    {
        const float* c = cos + t * half;
        const float* s = sin + t * half;
        const T* src_t = src + (t / seq) * sb + (t % seq) * st;
        for (int64_t h = 0; h < heads; ++h)
        {
            const T* a1 = src_t + h * sh;
            const T* a2 = a1 + half;
            T* x1 = dst + (t * heads + h) * head_dim;
            T* x2 = x1 + half;
            for_lanes<S>(0, half, [&](auto q, int64_t i) {
                using Q = decltype(q);
                const auto a = Q::load(a1 + i), b = Q::load(a2 + i);
                const auto cv = Q::load(c + i), sv = Q::mul(Q::load(s + i), Q::set1(sign));
                constexpr bool kNt = decltype(nt)::value && Q::Width != 1;
                put<kNt, Q>(x1 + i, Q::sub(Q::mul(a, cv), Q::mul(b, sv)));
                put<kNt, Q>(x2 + i, Q::fmadd(a, sv, Q::mul(b, cv)));
            });
        }
    }
    });
}

// ---- Gated activations ---------------------------------------------------------------------------------------
// h = act(g) · u, with act = silu (SwiGLU) or tanh-GELU (GeGLU); the backward recomputes act from g.

struct Silu
{
    template <class Q>
    static typename Q::V sigmoid(typename Q::V g)
    {
        return Q::recip(Q::add(Q::set1(1.0f), Q::exp(Q::sub(Q::zero(), g))));
    }
    template <class Q>
    static typename Q::V value(typename Q::V g) { return Q::mul(g, sigmoid<Q>(g)); }
    // d silu / dg = s · (1 + g · (1 − s))
    template <class Q>
    static void value_and_slope(typename Q::V g, typename Q::V& v, typename Q::V& d)
    {
        const auto s = sigmoid<Q>(g);
        v = Q::mul(g, s);
        d = Q::mul(s, Q::fmadd(g, Q::sub(Q::set1(1.0f), s), Q::set1(1.0f)));
    }
};

struct GeluTanh
{
    static constexpr float kSqrt2OverPi = 0.7978845608028654f, kCubic = 0.044715f;
    // With a = √(2/π)(g + 0.044715 g³), e = e^(−2a) and s = 1 / (1 + e) (so 1 + tanh(a) = 2s):
    //   gelu(g) = ½ g (1 + tanh a) = g · s,
    //   d/dg    = ½(1 + tanh a) + ½ g (1 − tanh² a) a' = s + g · s² e · 2a'   (1 − tanh² a = 4 s² e).
    // No 1 − t cancellation where tanh is near ±1; exp's clamp at 88 keeps e finite (s² e → 0 for very negative g).
    // −2a and 2a' are each one fmadd on g² with the constants folded in.
    template <class Q>
    static typename Q::V sigmoid_of_2a(typename Q::V g, typename Q::V g2, typename Q::V& e)
    {
        const auto minus_2a = Q::mul(g, Q::fmadd(Q::set1(-2.0f * kSqrt2OverPi * kCubic), g2, Q::set1(-2.0f * kSqrt2OverPi)));
        e = Q::exp(minus_2a);
        return Q::recip(Q::add(Q::set1(1.0f), e));
    }
    template <class Q>
    static typename Q::V value(typename Q::V g)
    {
        typename Q::V e;
        return Q::mul(g, sigmoid_of_2a<Q>(g, Q::mul(g, g), e));
    }
    template <class Q>
    static void value_and_slope(typename Q::V g, typename Q::V& v, typename Q::V& d)
    {
        typename Q::V e;
        const auto g2 = Q::mul(g, g);
        const auto s = sigmoid_of_2a<Q>(g, g2, e);
        v = Q::mul(g, s);
        const auto two_a_slope = Q::fmadd(Q::set1(2.0f * kSqrt2OverPi * 3.0f * kCubic), g2, Q::set1(2.0f * kSqrt2OverPi));
        d = Q::fmadd(Q::mul(v, Q::mul(s, e)), two_a_slope, s);
    }
};

template <class S, class T, class Act>
void glu_forward_range(const T* g, const T* u, int64_t begin, int64_t end, T* h, int32_t stream)
{
    with_stream<S>(stream, [&](auto nt) {
    for_pairs<S>(begin, end, [&](auto q, int64_t i) {
        using Q = decltype(q);
        typename Q::V g0, g1, u0, u1;
        Q::load2(g + i, g0, g1);
        Q::load2(u + i, u0, u1);
        put2<decltype(nt)::value && Q::Width != 1, Q>(h + i, Q::mul(Act::template value<Q>(g0), u0), Q::mul(Act::template value<Q>(g1), u1));
    });
    });
}

// dg = dh · u · act'(g), du = dh · act(g). dg may be g and du may be u (element i is read before it is written).
template <class S, class T, class Act>
void glu_backward_range(const T* g, const T* u, const T* dh, int64_t begin, int64_t end, T* dg, T* du, int32_t stream)
{
    with_stream<S>(stream, [&](auto nt) {
    for_pairs<S>(begin, end, [&](auto q, int64_t i) {
        using Q = decltype(q);
        typename Q::V g0, g1, u0, u1, h0, h1, v0, v1, d0, d1;
        Q::load2(g + i, g0, g1);
        Q::load2(u + i, u0, u1);
        Q::load2(dh + i, h0, h1);
        Act::template value_and_slope<Q>(g0, v0, d0);
        Act::template value_and_slope<Q>(g1, v1, d1);
        constexpr bool kNt = decltype(nt)::value && Q::Width != 1;
        put2<kNt, Q>(dg + i, Q::mul(Q::mul(h0, u0), d0), Q::mul(Q::mul(h1, u1), d1));
        put2<kNt, Q>(du + i, Q::mul(h0, v0), Q::mul(h1, v1));
    });
    });
}

template <class S>
const EngineFusedKernels* make_fused_kernels()
{
    static const EngineFusedKernels table = {
        &rmsnorm_forward_rows<S, float>, &rmsnorm_forward_rows<S, uint16_t>,
        &rmsnorm_backward_rows<S, float>, &rmsnorm_backward_rows<S, uint16_t>,
        &rope_rows<S, float>, &rope_rows<S, uint16_t>,
        {&glu_forward_range<S, float, Silu>, &glu_forward_range<S, float, GeluTanh>},
        {&glu_forward_range<S, uint16_t, Silu>, &glu_forward_range<S, uint16_t, GeluTanh>},
        {&glu_backward_range<S, float, Silu>, &glu_backward_range<S, float, GeluTanh>},
        {&glu_backward_range<S, uint16_t, Silu>, &glu_backward_range<S, uint16_t, GeluTanh>},
    };
    return &table;
}

} // namespace
