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
// 8 KiB of fp32 logits: the chunk's max pass and exp pass both run out of L1.
constexpr int64_t kChunk = 2048;

inline float logit_to_float(float v) { return v; }
inline float logit_to_float(uint16_t v) { return SimdScalar::load(&v); }
inline void float_to_logit(float* p, float v) { *p = v; }
inline void float_to_logit(uint16_t* p, float v) { SimdScalar::store(p, v); }
inline float scalar_exp(float x) { return SimdScalar::exp(x); }
inline float fmax_scalar(float a, float b) { return a > b ? a : b; }

template <class S, class T>
int64_t forward_rows(const T* logits, const int64_t* labels, int64_t row_begin, int64_t row_end, int64_t vocab,
                     int64_t ignore_index, float* logp, float* stats, float* logit_mean)
{
    using V = typename S::V;
    constexpr int W = S::Width;
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
        // Online max/sum at chunk granularity: the chunk's max is found first (from L1), so each element costs
        // one exp and the running sum is rescaled at most once per chunk.
        float m = kNegInf;
        V sum0 = S::zero(), sum1 = S::zero(), xs = S::zero();
        float tail_sum = 0.0f, tail_x = 0.0f;
        for (int64_t c0 = 0; c0 < vocab; c0 += kChunk)
        {
            const int64_t n = vocab - c0 < kChunk ? vocab - c0 : kChunk;
            const int64_t nv = n - n % W;
            const T* c = x + c0;
            V vmax = S::set1(kNegInf);
            for (int64_t i = 0; i < nv; i += W) vmax = S::max(vmax, S::load(c + i));
            float chunk_max = S::hmax(vmax);
            for (int64_t i = nv; i < n; ++i) chunk_max = fmax_scalar(chunk_max, logit_to_float(c[i]));
            if (chunk_max > m)
            {
                if (m != kNegInf)
                {
                    const float scale = scalar_exp(m - chunk_max);
                    sum0 = S::mul(sum0, S::set1(scale));
                    sum1 = S::mul(sum1, S::set1(scale));
                    tail_sum *= scale;
                }
                m = chunk_max;
            }
            if (m == kNegInf)
            {
                // Every logit so far is -inf: nothing to add to the sum of exps.
                for (int64_t i = 0; i < nv; i += W) xs = S::add(xs, S::load(c + i));
                for (int64_t i = nv; i < n; ++i) tail_x += logit_to_float(c[i]);
                continue;
            }
            const V vm = S::set1(m);
            int64_t i = 0;
            for (; i + 2 * W <= nv; i += 2 * W)
            {
                // The max pass of the next chunk would otherwise wait on memory while no exp is computed:
                // fetch it now, under this chunk's exps (past the row's end this is the next row: still useful).
                __builtin_prefetch(c + i + kChunk);
                __builtin_prefetch(c + i + kChunk + W);
                const V a = S::load(c + i), b = S::load(c + i + W);
                sum0 = S::add(sum0, S::exp(S::sub(a, vm)));
                sum1 = S::add(sum1, S::exp(S::sub(b, vm)));
                xs = S::add(xs, S::add(a, b));
            }
            for (; i < nv; i += W)
            {
                const V a = S::load(c + i);
                sum0 = S::add(sum0, S::exp(S::sub(a, vm)));
                xs = S::add(xs, a);
            }
            for (; i < n; ++i)
            {
                const float v = logit_to_float(c[i]);
                tail_sum += scalar_exp(v - m);
                tail_x += v;
            }
        }
        const float log_sum = __builtin_logf(S::hsum(S::add(sum0, sum1)) + tail_sum);
        stats[2 * r] = m;
        stats[2 * r + 1] = log_sum;
        logit_mean[r] = (S::hsum(xs) + tail_x) / static_cast<float>(vocab);
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
            s0 = S::add(s0, S::exp(S::load(x + i)));
            s1 = S::add(s1, S::exp(S::load(x + i + W)));
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
