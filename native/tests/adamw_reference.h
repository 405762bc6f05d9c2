// A plain double-precision AdamW (decoupled weight decay, bias correction, gradients scaled by a clipping factor)
// and deterministic multi-tensor problems, shared by the CPU and the emulated-CUDA tests of the multi-tensor AdamW.
// Written from the algorithm (Loshchilov & Hutter; torch.optim.AdamW's update), independently of the kernels.
#pragma once
#include "engine_native.h"
#include "reference.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace adamw_reference {

using reference::from_bf16;
using reference::to_bf16;

struct Step
{
    double lr, weight_decay, grad_scale;
};

constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8;

// The steps every test runs: weight decay throughout, clipping factors below 1 on some steps, a changing lr.
inline std::vector<Step> steps()
{
    return {{1e-2, 0.1, 1.0}, {1e-2, 0.1, 0.37}, {5e-3, 0.1, 1.0}, {2e-2, 0.1, 0.05}, {1e-2, 0.0, 1.0}, {1e-2, 0.1, 0.8}};
}

// One tensor in double, with the dtypes the kernel under test uses (values a bf16 kernel sees are rounded the same
// way here: gradients before use, moments after each step, bf16 weights without a master after each step).
struct Tensor
{
    int64_t numel = 0;
    bool decay = false;
    std::vector<double> w, m, v;
    std::vector<std::vector<double>> grads; // per step
};

struct Problem
{
    std::string name;
    bool bf16_params = false, master = false, bf16_state = false;
    std::vector<Tensor> tensors;
};

// Sizes: empty, single elements, vector tails, and tensors spanning several chunks of both the CPU (32768) and the
// CUDA (8192) kernels.
inline std::vector<int64_t> sizes() { return {0, 1, 7, 16, 33, 255, 4099, 70001, 513}; }

inline Problem make_problem(bool bf16_params, bool master, bool bf16_state, uint32_t seed, size_t step_count)
{
    Problem p;
    p.name = std::string(bf16_params ? (master ? "bf16+master" : "bf16-pure") : "f32") + (bf16_state ? " bf16-state" : " f32-state");
    p.bf16_params = bf16_params;
    p.master = master;
    p.bf16_state = bf16_state;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    int index = 0;
    for (int64_t n : sizes())
    {
        Tensor t;
        t.numel = n;
        t.decay = index % 2 == 0;
        // Gradient magnitudes differ per tensor (1e-3 ... 10), as they do between a model's layers.
        const float grad_magnitude = index % 3 == 0 ? 1e-3f : index % 3 == 1 ? 1.0f : 10.0f;
        t.w.resize(n);
        t.m.assign(n, 0.0);
        t.v.assign(n, 0.0);
        for (auto& x : t.w)
        {
            float f = 0.5f * normal(rng);
            if (bf16_params) f = from_bf16(to_bf16(f));
            x = f;
        }
        for (size_t s = 0; s < step_count; ++s)
        {
            std::vector<double> g(n);
            for (auto& x : g)
            {
                float f = grad_magnitude * normal(rng);
                if (bf16_params) f = from_bf16(to_bf16(f));
                x = f;
            }
            // Some exact zeros: the moments and the update must stay finite there.
            if (n > 3) g[3] = 0.0;
            t.grads.push_back(std::move(g));
        }
        p.tensors.push_back(std::move(t));
        ++index;
    }
    return p;
}

inline double round_bf16(double x) { return from_bf16(to_bf16(static_cast<float>(x))); }

// Step number `step` (1-based) of the double-precision reference, in place.
inline void apply(Problem& p, const Step& s, int step)
{
    const double bc1 = 1.0 - std::pow(kBeta1, step), bc2 = 1.0 - std::pow(kBeta2, step);
    for (Tensor& t : p.tensors)
    {
        const std::vector<double>& grad = t.grads[step - 1];
        for (int64_t i = 0; i < t.numel; ++i)
        {
            const double g = grad[i] * s.grad_scale;
            double w = t.w[i];
            if (t.decay) w *= 1.0 - s.lr * s.weight_decay;
            double m = kBeta1 * t.m[i] + (1.0 - kBeta1) * g;
            double v = kBeta2 * t.v[i] + (1.0 - kBeta2) * g * g;
            w -= s.lr / bc1 * m / (std::sqrt(v / bc2) + kEps);
            if (p.bf16_state)
            {
                m = round_bf16(m);
                v = round_bf16(v);
            }
            if (p.bf16_params && !p.master) w = round_bf16(w);
            t.w[i] = w;
            t.m[i] = m;
            t.v[i] = v;
        }
    }
}

inline double sum_squares(const Problem& p, int step)
{
    double s = 0.0;
    for (const Tensor& t : p.tensors)
        for (double g : t.grads[step - 1]) s += g * g;
    return s;
}

// The float scalars a caller passes to the kernels, rounded from double as torch rounds Scalar arguments.
struct HyperFloats
{
    float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, bias_correction2, step_size, decay_factor, grad_scale;
};

inline HyperFloats hyper(const Step& s, int step)
{
    const double bc1 = 1.0 - std::pow(kBeta1, step), bc2 = 1.0 - std::pow(kBeta2, step);
    return {static_cast<float>(kBeta1), static_cast<float>(1.0 - kBeta1), static_cast<float>(kBeta2),
            static_cast<float>(1.0 - kBeta2), static_cast<float>(kEps), static_cast<float>(bc2),
            static_cast<float>(-s.lr / bc1), static_cast<float>(1.0 - s.lr * s.weight_decay), static_cast<float>(s.grad_scale)};
}

// Tolerances against the double reference after all steps. f32: the kernel's float rounding (a few 1e-8 per
// operation). bf16 moments: a float/double difference can flip one rounding of m or v (2^-8 relative), which moves
// the weight by a fraction of lr. bf16 weights without a master: likewise one bf16 ulp of the weight per step.
// The moments' absolute tolerances are relative to the tensor's largest gradient (m) and its square (v): a moment
// can be the small difference of its two terms, where a relative bound means nothing.
struct Tolerance
{
    double w_abs, w_rel, m_abs, v_abs, state_rel;
};

inline Tolerance tolerance(const Problem& p, const Tensor& t)
{
    double gmax = 0.0;
    for (const auto& g : t.grads)
        for (double x : g) gmax = std::fmax(gmax, std::fabs(x));
    if (!p.bf16_state && !(p.bf16_params && !p.master)) return {1e-6, 1e-6, 1e-6 * gmax, 1e-6 * gmax * gmax, 1e-5};
    const double bf16_ulp = std::ldexp(1.0, -8);
    const double w_rel = p.bf16_params && !p.master ? 2.0 * bf16_ulp : 1e-6;
    return {0.05 * 2e-2, w_rel, 2 * bf16_ulp * gmax, 2 * bf16_ulp * gmax * gmax, 2.0 * bf16_ulp};
}

// The kernel's side of a problem: the arrays in the kernel's dtypes and their EngineAdamWTensor descriptors.
struct Buffers
{
    std::vector<std::vector<float>> w32, master, m32, v32;
    std::vector<std::vector<uint16_t>> w16, m16, v16;
    std::vector<std::vector<float>> g32;
    std::vector<std::vector<uint16_t>> g16;
    std::vector<EngineAdamWTensor> tensors;

    explicit Buffers(const Problem& p)
    {
        const size_t n = p.tensors.size();
        w32.resize(n); master.resize(n); m32.resize(n); v32.resize(n); w16.resize(n); m16.resize(n); v16.resize(n);
        g32.resize(n); g16.resize(n);
        for (size_t i = 0; i < n; ++i)
        {
            const Tensor& t = p.tensors[i];
            EngineAdamWTensor d{};
            d.numel = t.numel;
            d.decay = t.decay ? 1 : 0;
            d.param_dtype = p.bf16_params ? ENGINE_DTYPE_BF16 : ENGINE_DTYPE_F32;
            d.state_dtype = p.bf16_state ? ENGINE_DTYPE_BF16 : ENGINE_DTYPE_F32;
            if (p.bf16_params)
            {
                for (double x : t.w) w16[i].push_back(to_bf16(static_cast<float>(x)));
                d.param = w16[i].data();
                if (p.master)
                {
                    master[i].assign(t.w.begin(), t.w.end());
                    d.master = master[i].data();
                }
                g16[i].resize(t.numel);
                d.grad = g16[i].data();
            }
            else
            {
                w32[i].assign(t.w.begin(), t.w.end());
                d.param = w32[i].data();
                g32[i].resize(t.numel);
                d.grad = g32[i].data();
            }
            if (p.bf16_state)
            {
                m16[i].assign(t.numel, 0);
                v16[i].assign(t.numel, 0);
                d.exp_avg = m16[i].data();
                d.exp_avg_sq = v16[i].data();
            }
            else
            {
                m32[i].assign(t.numel, 0.0f);
                v32[i].assign(t.numel, 0.0f);
                d.exp_avg = m32[i].data();
                d.exp_avg_sq = v32[i].data();
            }
            tensors.push_back(d);
        }
    }

    // Copies step `step`'s gradients (1-based) into the kernel's gradient arrays.
    void load_grads(const Problem& p, int step)
    {
        for (size_t i = 0; i < p.tensors.size(); ++i)
            for (int64_t j = 0; j < p.tensors[i].numel; ++j)
            {
                const float g = static_cast<float>(p.tensors[i].grads[step - 1][j]);
                if (p.bf16_params) g16[i][j] = to_bf16(g);
                else g32[i][j] = g;
            }
    }

    double weight(const Problem& p, size_t i, int64_t j) const
    {
        return p.bf16_params ? (p.master ? master[i][j] : from_bf16(w16[i][j])) : w32[i][j];
    }
    double exp_avg(const Problem& p, size_t i, int64_t j) const { return p.bf16_state ? from_bf16(m16[i][j]) : m32[i][j]; }
    double exp_avg_sq(const Problem& p, size_t i, int64_t j) const { return p.bf16_state ? from_bf16(v16[i][j]) : v32[i][j]; }
};

inline EngineAdamWHyper engine_hyper(const Step& s, int step)
{
    const HyperFloats h = hyper(s, step);
    return {h.beta1, h.one_minus_beta1, h.beta2, h.one_minus_beta2, h.eps, h.bias_correction2, h.step_size, h.decay_factor, h.grad_scale};
}

} // namespace adamw_reference
