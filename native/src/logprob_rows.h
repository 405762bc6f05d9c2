// Row kernels of the fused log-prob, written once over a SIMD abstraction S (SimdScalar, SimdAvx2, SimdAvx512)
// and a logit type T (float, or uint16_t holding bf16 bits). Included by each ISA translation unit inside an
// anonymous namespace, so every instantiation is private to the ISA it was compiled for.
#pragma once
#include "simd_scalar.h"
#include "row_kernels.h"
#include <stdint.h>
#include <string.h>

namespace {

constexpr float kNegInf = -__builtin_inff();
// The forward's offset is the max of a row's first kGuess logits; a row whose max exceeds it by more than
// kMaxOffset is read again (terms up to e^64 cannot overflow a float sum of fewer than 10^9 of them).
constexpr int64_t kGuess = 256;
constexpr float kMaxOffset = 64.0f;
// Block of the forward's exp sums (a multiple of every 2W).
constexpr int64_t kSumBlock = 512;

inline float logit_to_float(float v) { return v; }
inline float logit_to_float(uint16_t v) { return SimdScalar::load(&v); }
inline void float_to_logit(float* p, float v) { *p = v; }
inline void float_to_logit(uint16_t* p, float v) { SimdScalar::store(p, v); }
inline float scalar_exp(float x) { return SimdScalar::exp(x); }
inline float fmax_scalar(float a, float b) { return a > b ? a : b; }

// Maximum of n logits (4 independent chains: one would be bound by the max latency, not by the loads).
template <class S, class T>
float max_of(const T* c, int64_t n)
{
    using V = typename S::V;
    constexpr int W = S::Width;
    const int64_t nv = n - n % W;
    V vmax0 = S::set1(kNegInf), vmax1 = vmax0, vmax2 = vmax0, vmax3 = vmax0;
    int64_t j = 0;
    for (; j + 4 * W <= nv; j += 4 * W)
    {
        V a, b, d, e;
        S::load2(c + j, a, b);
        S::load2(c + j + 2 * W, d, e);
        vmax0 = S::max(vmax0, a);
        vmax1 = S::max(vmax1, b);
        vmax2 = S::max(vmax2, d);
        vmax3 = S::max(vmax3, e);
    }
    for (; j < nv; j += W) vmax0 = S::max(vmax0, S::load(c + j));
    float m = S::hmax(S::max(S::max(vmax0, vmax1), S::max(vmax2, vmax3)));
    for (int64_t i = nv; i < n; ++i) m = fmax_scalar(m, logit_to_float(c[i]));
    return m;
}

struct RowSums
{
    float exp_sum; // sum of exp(x - offset)
    float max;     // max of the row
    float sum;     // sum of the raw logits
};

// One streaming pass over a row: sum of exp(x - offset), the maximum and the sum of the logits. Exact when
// max - offset <= kMaxOffset (each term at most e^64, so no lane can overflow for any vocabulary below 10^9);
// otherwise exp_sum is meaningless and the caller passes again with offset = max.
template <class S, class T>
RowSums row_pass(const T* x, int64_t vocab, float offset)
{
    using V = typename S::V;
    constexpr int W = S::Width;
    const int64_t nv = vocab - vocab % W;
    const V vo = S::set1(offset);
    V sum0 = S::zero(), sum1 = S::zero(), max0 = S::set1(kNegInf), max1 = max0, xs = S::zero();
    int64_t i = 0;
    // The exps are summed per block of kSumBlock logits, then the block sums: with W = 1 (scalar) one running
    // sum of 30000 terms would be off by ~1e-5 relative, a block keeps it near 1e-7.
    while (i + 2 * W <= nv)
    {
        const int64_t block_end = nv - i < kSumBlock ? nv - nv % (2 * W) : i + kSumBlock;
        V bsum0 = S::zero(), bsum1 = S::zero();
        for (; i < block_end; i += 2 * W)
        {
            V a, b;
            S::load2(x + i, a, b);
            max0 = S::max(max0, a);
            max1 = S::max(max1, b);
            // x - offset <= 88 whenever the result is used (see above): no upper clamp needed.
            bsum0 = S::add(bsum0, S::exp_nonpositive(S::sub(a, vo)));
            bsum1 = S::add(bsum1, S::exp_nonpositive(S::sub(b, vo)));
            xs = S::add(xs, S::add(a, b));
        }
        sum0 = S::add(sum0, bsum0);
        sum1 = S::add(sum1, bsum1);
    }
    for (; i < nv; i += W)
    {
        const V a = S::load(x + i);
        max0 = S::max(max0, a);
        sum0 = S::add(sum0, S::exp_nonpositive(S::sub(a, vo)));
        xs = S::add(xs, a);
    }
    RowSums out{S::hsum(S::add(sum0, sum1)), S::hmax(S::max(max0, max1)), S::hsum(xs)};
    for (; i < vocab; ++i)
    {
        const float v = logit_to_float(x[i]);
        out.max = fmax_scalar(out.max, v);
        out.exp_sum += scalar_exp(v - offset);
        out.sum += v;
    }
    return out;
}

// Forward over rows [row_begin, row_end), one streaming read of each row, like the floor loop: the sum of
// exp(x - offset) is taken against an offset guessed from the row's first logits (their max), while the
// row's true max is found in the same pass; the sum is then rescaled to the max. Only when the max exceeds the
// guess by more than kMaxOffset (or the first logits are all -inf) is the row read a second time.
template <class S, class T>
int64_t forward_rows(const T* logits, const int64_t* labels, int64_t row_begin, int64_t row_end, int64_t vocab,
                     int64_t ignore_index, float* logp, float* stats, float* logit_mean)
{
    int64_t bad_row = -1;
    for (int64_t r = row_begin; r < row_end; ++r)
    {
        const T* x = logits + r * vocab;
        const int64_t label = labels[r];
        const bool ignored = label == ignore_index;
        if (!ignored && (label < 0 || label >= vocab))
        {
            if (bad_row < 0) bad_row = r;
            continue;
        }
        float offset = max_of<S>(x, vocab < kGuess ? vocab : kGuess);
        RowSums row = row_pass<S>(x, vocab, offset);
        const float m = row.max;
        if (m != kNegInf && !(m - offset <= kMaxOffset))
        {
            offset = m;
            row = row_pass<S>(x, vocab, offset);
        }
        // A row of -inf only: log 0 = -inf and a NaN log-prob, as torch gives.
        const float log_sum = m == kNegInf ? __builtin_logf(0.0f) : __builtin_logf(row.exp_sum * scalar_exp(offset - m));
        stats[2 * r] = m;
        stats[2 * r + 1] = log_sum;
        logit_mean[r] = row.sum / static_cast<float>(vocab);
        // (x - max) - log_sum rather than x - (max + log_sum): exact when |logits| ~ 1e4.
        logp[r] = ignored ? 0.0f : (logit_to_float(x[label]) - m) - log_sum;
    }
    return bad_row;
}

template <class S, class T>
void backward_rows(const T* logits, const int64_t* labels, const float* stats, const float* grad_out,
                   int64_t row_begin, int64_t row_end, int64_t vocab, int64_t ignore_index, T* grad)
{
    using V = typename S::V;
    constexpr int W = S::Width;
    const int64_t nv = vocab - vocab % W;
    for (int64_t r = row_begin; r < row_end; ++r)
    {
        const T* x = logits + r * vocab;
        T* g = grad + r * vocab;
        const int64_t label = labels[r];
        if (label == ignore_index || label < 0 || label >= vocab)
        {
            memset(static_cast<void*>(g), 0, static_cast<size_t>(vocab) * sizeof(T));
            continue;
        }
        const float go = grad_out[r], m = stats[2 * r], log_sum = stats[2 * r + 1];
        // Read before the row is overwritten (grad may alias logits).
        const float x_label = logit_to_float(x[label]);
        const V vm = S::set1(m), vls = S::set1(log_sum), vneg = S::set1(-go);
        int64_t i = 0;
        for (; i < nv; i += W)
            S::store(g + i, S::mul(vneg, S::exp(S::sub(S::sub(S::load(x + i), vm), vls))));
        for (; i < vocab; ++i)
            float_to_logit(g + i, -go * scalar_exp((logit_to_float(x[i]) - m) - log_sum));
        float_to_logit(g + label, go * (1.0f - scalar_exp((x_label - m) - log_sum)));
    }
}

template <class S, class T>
void floor_rows(const T* logits, int64_t row_begin, int64_t row_end, int64_t vocab, float* out)
{
    using V = typename S::V;
    constexpr int W = S::Width;
    const int64_t nv = vocab - vocab % W;
    for (int64_t r = row_begin; r < row_end; ++r)
    {
        const T* x = logits + r * vocab;
        V s0 = S::zero(), s1 = S::zero();
        int64_t i = 0;
        for (; i + 2 * W <= nv; i += 2 * W)
        {
            V a, b;
            S::load2(x + i, a, b); // the forward's fastest load, so the floor stays a floor
            s0 = S::add(s0, S::exp(a));
            s1 = S::add(s1, S::exp(b));
        }
        for (; i < nv; i += W) s0 = S::add(s0, S::exp(S::load(x + i)));
        float tail = 0.0f;
        for (; i < vocab; ++i) tail += scalar_exp(logit_to_float(x[i]));
        out[r] = S::hsum(S::add(s0, s1)) + tail;
    }
}

template <class S>
const EngineRowKernels* make_row_kernels()
{
    static const EngineRowKernels table = {
        &forward_rows<S, float>, &forward_rows<S, uint16_t>,
        &backward_rows<S, float>, &backward_rows<S, uint16_t>,
        &floor_rows<S, float>, &floor_rows<S, uint16_t>,
    };
    return &table;
}

} // namespace
