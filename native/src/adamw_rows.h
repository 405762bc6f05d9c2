// The multi-tensor AdamW's element kernels, written once over a SIMD abstraction S (SimdScalar, SimdAvx2,
// SimdAvx512) and the element types: weights P (float, or uint16_t holding bf16 bits; gradients have the weights'
// dtype) and moments M. Included by each ISA translation unit inside an anonymous namespace.
//
// The arithmetic mirrors the composite optimizer (src/Engine/Training/AdamW.cs) operation for operation, in fp32:
//   w = w * (1 - lr*wd)                          (decayed tensors only)
//   m = m * b1 + (1 - b1) * g
//   v = v * b2 + ((1 - b2) * g) * g
//   w = w + (step_size * m) / (sqrt(v / bc2) + eps)    with step_size = -lr / bc1
// with g = grad * grad_scale (the clipping factor). bf16 moments and weights are loaded into fp32 and stored
// rounded to nearest even (as torch's copy_ does); with an fp32 master the master is updated and the bf16 weight
// is its rounding.
#pragma once
#include "adamw_kernels.h"
#include "simd_scalar.h"
#include <stdint.h>

namespace {

template <class S>
struct AdamWConstants
{
    using V = typename S::V;
    V beta1, one_minus_beta1, beta2, one_minus_beta2, eps, bias_correction2, step_size, decay, grad_scale;

    AdamWConstants(const EngineAdamWHyper& h, bool decayed)
        : beta1(S::set1(h.beta1)), one_minus_beta1(S::set1(h.one_minus_beta1)), beta2(S::set1(h.beta2)),
          one_minus_beta2(S::set1(h.one_minus_beta2)), eps(S::set1(h.eps)), bias_correction2(S::set1(h.bias_correction2)),
          step_size(S::set1(h.step_size)), decay(S::set1(decayed ? h.decay_factor : 1.0f)), grad_scale(S::set1(h.grad_scale))
    {
    }
};

// One vector (or, with S = SimdScalar, one element) at index i.
template <class S, class P, class M, bool Master, bool Floor>
inline void adamw_at(P* param, float* master, const P* grad, M* exp_avg, M* exp_avg_sq, int64_t i, const AdamWConstants<S>& c)
{
    using V = typename S::V;
    const V g = S::mul(S::load(grad + i), c.grad_scale);
    V w = Master ? S::load(master + i) : S::load(param + i);
    V m = S::load(exp_avg + i);
    V v = S::load(exp_avg_sq + i);
    if constexpr (Floor)
    {
        w = S::add(w, g);
        m = S::add(m, g);
        v = S::add(v, g);
    }
    else
    {
        w = S::mul(w, c.decay); // decay is exactly 1 for tensors without weight decay
        m = S::add(S::mul(m, c.beta1), S::mul(c.one_minus_beta1, g));
        v = S::add(S::mul(v, c.beta2), S::mul(S::mul(c.one_minus_beta2, g), g));
        const V denom = S::add(S::sqrt(S::div(v, c.bias_correction2)), c.eps);
        w = S::add(w, S::div(S::mul(c.step_size, m), denom));
    }
    S::store(exp_avg + i, m);
    S::store(exp_avg_sq + i, v);
    if constexpr (Master) S::store(master + i, w);
    S::store(param + i, w);
}

template <class S, class P, class M, bool Master, bool Floor>
void adamw_range(const EngineAdamWTensor* t, int64_t begin, int64_t end, const EngineAdamWHyper* h)
{
    constexpr int W = S::Width;
    P* param = static_cast<P*>(t->param);
    const P* grad = static_cast<const P*>(t->grad);
    M* m = static_cast<M*>(t->exp_avg);
    M* v = static_cast<M*>(t->exp_avg_sq);
    const AdamWConstants<S> c(*h, t->decay != 0);
    int64_t i = begin;
    for (; i + W <= end; i += W) adamw_at<S, P, M, Master, Floor>(param, t->master, grad, m, v, i, c);
    if (i < end)
    {
        const AdamWConstants<SimdScalar> cs(*h, t->decay != 0);
        for (; i < end; ++i) adamw_at<SimdScalar, P, M, Master, Floor>(param, t->master, grad, m, v, i, cs);
    }
}

template <class S, class P, class M, bool Master>
void adamw_range_or_floor(const EngineAdamWTensor* t, int64_t begin, int64_t end, const EngineAdamWHyper* h, bool floor)
{
    if (floor) adamw_range<S, P, M, Master, true>(t, begin, end, h);
    else adamw_range<S, P, M, Master, false>(t, begin, end, h);
}

template <class S>
void adamw_update(const EngineAdamWTensor* t, int64_t begin, int64_t end, const EngineAdamWHyper* h, bool floor)
{
    const bool bf16_state = t->state_dtype == ENGINE_DTYPE_BF16;
    if (t->param_dtype == ENGINE_DTYPE_F32)
    {
        if (bf16_state) adamw_range_or_floor<S, float, uint16_t, false>(t, begin, end, h, floor);
        else adamw_range_or_floor<S, float, float, false>(t, begin, end, h, floor);
    }
    else if (t->master)
    {
        if (bf16_state) adamw_range_or_floor<S, uint16_t, uint16_t, true>(t, begin, end, h, floor);
        else adamw_range_or_floor<S, uint16_t, float, true>(t, begin, end, h, floor);
    }
    else
    {
        if (bf16_state) adamw_range_or_floor<S, uint16_t, uint16_t, false>(t, begin, end, h, floor);
        else adamw_range_or_floor<S, uint16_t, float, false>(t, begin, end, h, floor);
    }
}

// Elements per block of the sum of squares: each block is summed in f32 lanes, the blocks in double (one f32
// running sum over a 32768-element chunk would be off by ~1e-6 relative).
constexpr int64_t kSquaresBlock = 1024;

template <class S, class G>
double sum_squares_range(const G* g, int64_t begin, int64_t end)
{
    using V = typename S::V;
    constexpr int W = S::Width;
    double total = 0.0;
    int64_t i = begin;
    while (i + 4 * W <= end)
    {
        const int64_t block_end = i + kSquaresBlock < end ? i + kSquaresBlock : end;
        // Four chains so the adds are not bound by their latency.
        V a0 = S::zero(), a1 = a0, a2 = a0, a3 = a0;
        for (; i + 4 * W <= block_end; i += 4 * W)
        {
            const V x0 = S::load(g + i), x1 = S::load(g + i + W), x2 = S::load(g + i + 2 * W), x3 = S::load(g + i + 3 * W);
            a0 = S::add(a0, S::mul(x0, x0));
            a1 = S::add(a1, S::mul(x1, x1));
            a2 = S::add(a2, S::mul(x2, x2));
            a3 = S::add(a3, S::mul(x3, x3));
        }
        total += static_cast<double>(S::hsum(S::add(S::add(a0, a1), S::add(a2, a3))));
    }
    for (; i < end; ++i)
    {
        const float x = SimdScalar::load(g + i);
        total += static_cast<double>(x) * x;
    }
    return total;
}

template <class S>
double adamw_sum_squares(const void* grad, int32_t dtype, int64_t begin, int64_t end)
{
    return dtype == ENGINE_DTYPE_F32 ? sum_squares_range<S>(static_cast<const float*>(grad), begin, end)
                                     : sum_squares_range<S>(static_cast<const uint16_t*>(grad), begin, end);
}

template <class S>
const EngineAdamWKernels* make_adamw_kernels()
{
    static const EngineAdamWKernels k{&adamw_update<S>, &adamw_sum_squares<S>};
    return &k;
}

} // namespace
