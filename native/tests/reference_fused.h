// Double-precision references for the fused RMSNorm, RoPE and gated activations, written from the formulas
// (HF's modelling code) independently of the kernels, and random inputs for them.
#pragma once
#include "reference.h"
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace fused_reference {

inline std::vector<float> random_values(size_t n, float scale, uint32_t seed, bool round_to_bf16)
{
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    if (round_to_bf16)
        for (auto& x : v) x = reference::from_bf16(reference::to_bf16(x));
    return v;
}

inline double bf16_round(double x) { return reference::from_bf16(reference::to_bf16(static_cast<float>(x))); }

// y = w · x̂ (x̂ rounded to bf16 first when bf16) or (1 + w) · x̂; inv per row.
inline void rmsnorm_forward(const std::vector<float>& x, const std::vector<float>& w, int64_t rows, int64_t n, double eps,
                            bool unit_offset, bool bf16, std::vector<double>& y, std::vector<double>& inv)
{
    y.assign(static_cast<size_t>(rows * n), 0.0);
    inv.assign(static_cast<size_t>(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r)
    {
        double ss = 0;
        for (int64_t j = 0; j < n; ++j) ss += static_cast<double>(x[r * n + j]) * x[r * n + j];
        const double iv = 1.0 / std::sqrt(ss / n + eps);
        inv[r] = iv;
        for (int64_t j = 0; j < n; ++j)
        {
            double xhat = x[r * n + j] * iv;
            if (unit_offset) y[r * n + j] = xhat * (1.0 + w[j]);
            else y[r * n + j] = w[j] * (bf16 ? bf16_round(xhat) : xhat);
        }
    }
}

// Gradients of sum(dy · y) with y = w' · x̂ (x̂ unrounded): dx and dw.
inline void rmsnorm_backward(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dy, int64_t rows,
                             int64_t n, double eps, bool unit_offset, std::vector<double>& dx, std::vector<double>& dw)
{
    dx.assign(static_cast<size_t>(rows * n), 0.0);
    dw.assign(static_cast<size_t>(n), 0.0);
    for (int64_t r = 0; r < rows; ++r)
    {
        double ss = 0;
        for (int64_t j = 0; j < n; ++j) ss += static_cast<double>(x[r * n + j]) * x[r * n + j];
        const double iv = 1.0 / std::sqrt(ss / n + eps);
        double dot = 0;
        for (int64_t j = 0; j < n; ++j)
        {
            const double wp = unit_offset ? 1.0 + w[j] : w[j];
            dot += dy[r * n + j] * wp * x[r * n + j] * iv;
        }
        for (int64_t j = 0; j < n; ++j)
        {
            const double wp = unit_offset ? 1.0 + w[j] : w[j];
            const double xhat = x[r * n + j] * iv;
            dx[r * n + j] = iv * (dy[r * n + j] * wp - xhat * dot / n);
            dw[j] += dy[r * n + j] * xhat;
        }
    }
}

// HF rotate-half: out = x · cos + rotate_half(x) · sin with cos/sin repeated over the halves; inverse uses −sin.
inline std::vector<double> rope(const std::vector<float>& x, const std::vector<float>& cos, const std::vector<float>& sin,
                                int64_t tokens, int64_t heads, int64_t head_dim, bool inverse)
{
    const int64_t half = head_dim / 2;
    std::vector<double> out(x.size());
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t h = 0; h < heads; ++h)
            for (int64_t i = 0; i < half; ++i)
            {
                const size_t base = static_cast<size_t>((t * heads + h) * head_dim);
                const double c = cos[t * half + i], s = (inverse ? -1.0 : 1.0) * sin[t * half + i];
                const double a = x[base + i], b = x[base + half + i];
                out[base + i] = a * c - b * s;
                out[base + half + i] = b * c + a * s;
            }
    return out;
}

// Default, linear and llama3 RoPE tables [tokens, head_dim / 2] for positions 0..tokens-1 (HF's formulas in double).
inline void rope_tables(int64_t tokens, int64_t head_dim, double theta, int kind, std::vector<float>& cos, std::vector<float>& sin)
{
    const int64_t half = head_dim / 2;
    cos.resize(static_cast<size_t>(tokens * half));
    sin.resize(cos.size());
    for (int64_t i = 0; i < half; ++i)
    {
        double inv_freq = 1.0 / std::pow(theta, 2.0 * i / head_dim);
        if (kind == 2) // llama3: factor 8, low 1, high 4, original context 64 (small, so every band is exercised)
        {
            const double factor = 8, low = 1, high = 4, original = 64;
            const double wavelen = 2 * M_PI / inv_freq;
            if (wavelen > original / low) inv_freq /= factor;
            else if (wavelen >= original / high)
            {
                const double smooth = (original / wavelen - low) / (high - low);
                inv_freq = (1 - smooth) * inv_freq / factor + smooth * inv_freq;
            }
        }
        for (int64_t t = 0; t < tokens; ++t)
        {
            const double pos = kind == 1 ? t / 4.0 : static_cast<double>(t); // linear: factor 4
            cos[t * half + i] = static_cast<float>(std::cos(pos * inv_freq));
            sin[t * half + i] = static_cast<float>(std::sin(pos * inv_freq));
        }
    }
}

inline double act(bool gelu, double g)
{
    if (!gelu) return g / (1.0 + std::exp(-g));
    return 0.5 * g * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
}

// The derivative by the formulas' own rules (checked against a central difference in the tests).
inline double act_slope(bool gelu, double g)
{
    if (!gelu)
    {
        const double s = 1.0 / (1.0 + std::exp(-g));
        return s * (1.0 + g * (1.0 - s));
    }
    const double k = std::sqrt(2.0 / M_PI);
    const double t = std::tanh(k * (g + 0.044715 * g * g * g));
    return 0.5 * (1.0 + t) + 0.5 * g * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * g * g);
}

// A tensor of either dtype for the kernels under test (CPU and emulated CUDA), read back as floats.
struct Buffer
{
    bool bf16;
    std::vector<float> f;
    std::vector<uint16_t> b;
    Buffer(const std::vector<float>& v, bool is_bf16) : bf16(is_bf16), f(v), b(reference::as_bf16(v)) {}
    Buffer(size_t n, bool is_bf16) : bf16(is_bf16), f(n, 0.0f), b(n, 0) {}
    void* data() { return bf16 ? static_cast<void*>(b.data()) : static_cast<void*>(f.data()); }
    unsigned short* u() { return reinterpret_cast<unsigned short*>(b.data()); }
    float at(size_t i) const { return bf16 ? reference::from_bf16(b[i]) : f[i]; }
    size_t size() const { return f.size(); }
};

} // namespace fused_reference
