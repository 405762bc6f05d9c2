// Double-precision reference of the per-token log-prob and deterministic test inputs, shared by the CPU and the
// emulated-CUDA tests. Written independently of the kernels: plain two-pass log-sum-exp in double.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace reference {

constexpr int64_t kIgnore = -100;

inline uint16_t to_bf16(float f)
{
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}
inline float from_bf16(uint16_t b)
{
    uint32_t u = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

struct Case
{
    std::string name;
    int64_t rows, vocab;
    std::vector<float> logits; // fp32 values (for bf16 runs, already rounded to bf16)
    std::vector<int64_t> labels;
    std::vector<float> grad_out;
};

enum class Values { Normal, Extreme, NegInf };

// rows x vocab logits: Normal ~ N(0, 3); Extreme mixes +-1e4 into the normal ones; NegInf masks about a third of
// each row to -inf (never the label). Every third row (when rows > 1) has the ignore label.
inline Case make_case(int64_t rows, int64_t vocab, Values kind, bool bf16, uint32_t seed)
{
    Case c;
    c.name = std::to_string(rows) + "x" + std::to_string(vocab) +
             (kind == Values::Normal ? " normal" : kind == Values::Extreme ? " extreme" : " -inf") + (bf16 ? " bf16" : " f32");
    c.rows = rows;
    c.vocab = vocab;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    c.logits.resize(static_cast<size_t>(rows * vocab));
    c.labels.resize(static_cast<size_t>(rows));
    c.grad_out.resize(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r)
    {
        c.labels[r] = (rows > 1 && r % 3 == 2) ? kIgnore : pick(rng);
        c.grad_out[r] = unit(rng) * 2.0f - 0.5f;
        for (int64_t v = 0; v < vocab; ++v)
        {
            float x = normal(rng);
            if (kind == Values::Extreme)
            {
                const float u = unit(rng);
                if (u < 0.05f) x = 1e4f;
                else if (u < 0.10f) x = -1e4f;
            }
            else if (kind == Values::NegInf && v != c.labels[r] && unit(rng) < 0.33f)
                x = -std::numeric_limits<float>::infinity();
            if (bf16) x = from_bf16(to_bf16(x));
            c.logits[r * vocab + v] = x;
        }
    }
    return c;
}

inline std::vector<uint16_t> as_bf16(const std::vector<float>& v)
{
    std::vector<uint16_t> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = to_bf16(v[i]);
    return out;
}

struct Forward
{
    std::vector<double> logp, lse, mean;
};

inline Forward forward(const Case& c)
{
    Forward f;
    for (int64_t r = 0; r < c.rows; ++r)
    {
        const float* x = &c.logits[r * c.vocab];
        double m = -std::numeric_limits<double>::infinity(), sum = 0.0, xs = 0.0;
        for (int64_t v = 0; v < c.vocab; ++v) m = std::max(m, static_cast<double>(x[v]));
        for (int64_t v = 0; v < c.vocab; ++v)
        {
            sum += std::exp(static_cast<double>(x[v]) - m);
            xs += x[v];
        }
        const double lse = m + std::log(sum);
        f.lse.push_back(lse);
        f.mean.push_back(xs / static_cast<double>(c.vocab));
        f.logp.push_back(c.labels[r] == kIgnore ? 0.0 : (static_cast<double>(x[c.labels[r]]) - m) - std::log(sum));
    }
    return f;
}

// grad[r, v] = g[r] * (onehot(label)[v] - softmax[v]); zero rows for ignored labels.
inline std::vector<double> backward(const Case& c)
{
    std::vector<double> grad(c.logits.size(), 0.0);
    const Forward f = forward(c);
    for (int64_t r = 0; r < c.rows; ++r)
    {
        if (c.labels[r] == kIgnore) continue;
        for (int64_t v = 0; v < c.vocab; ++v)
        {
            const double p = std::exp(static_cast<double>(c.logits[r * c.vocab + v]) - f.lse[r]);
            grad[r * c.vocab + v] = c.grad_out[r] * ((v == c.labels[r] ? 1.0 : 0.0) - p);
        }
    }
    return grad;
}

// The shapes every kernel is checked on: one row, one column, vocabularies not a multiple of any block or
// vector width, more than one chunk, and a realistic vocabulary.
struct Shape
{
    int64_t rows, vocab;
};
inline std::vector<Shape> shapes(bool small)
{
    if (small) return {{1, 1}, {1, 7}, {3, 33}, {4, 255}, {5, 257}, {2, 1000}, {3, 2049}, {2, 4099}};
    return {{1, 1}, {1, 7}, {3, 33}, {4, 255}, {5, 257}, {6, 2048}, {3, 2049}, {7, 4099}, {2, 32000}, {3, 32768}};
}

} // namespace reference
