// Plain reference of the quantized-weight formats (engine_native.h) and of the dequantizing matmul, for the CPU
// and the emulated-CUDA tests: each weight value read straight from the format's definition, one at a time, and
// dequantize-then-matmul in double. Quantized weights come from engine_quantize (its bits are checked against an
// independent reference quantizer in tests/Engine.Tests/Kernels/QuantFormatTests.cs).
#pragma once
#include "engine_native.h"
#include "reference.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace qref {

// The NF4 code book as published with QLoRA / bitsandbytes.
inline const float kNf4[16] = {-1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
                               -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
                               0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
                               0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

struct Quantized
{
    EngineQuantWeight q{};
    std::vector<uint8_t> data, qabsmax;
    std::vector<float> absmax, absmax2, code2;
};

inline const char* format_name(int32_t f) { return f == ENGINE_QUANT_NF4 ? "nf4" : f == ENGINE_QUANT_NF4_DQ ? "nf4-dq" : "int8"; }

// Quantizes w [rows, cols] with the library (buffers sized from the format's definition).
inline Quantized quantize(const std::vector<float>& w, int64_t rows, int64_t cols, int32_t format)
{
    Quantized z;
    const int64_t n = rows * cols, blocks = (n + 63) / 64;
    z.data.assign(format == ENGINE_QUANT_INT8 ? n : (n + 1) / 2, 0);
    if (format == ENGINE_QUANT_NF4_DQ)
    {
        z.qabsmax.assign(blocks, 0);
        z.absmax2.assign((blocks + 255) / 256, 0.0f);
        z.code2.assign(256, 0.0f);
    }
    else
        z.absmax.assign(blocks, 0.0f);
    z.q.format = format;
    z.q.rows = rows;
    z.q.cols = cols;
    z.q.data = z.data.data();
    z.q.absmax = z.absmax.empty() ? nullptr : z.absmax.data();
    z.q.qabsmax = z.qabsmax.empty() ? nullptr : z.qabsmax.data();
    z.q.absmax2 = z.absmax2.empty() ? nullptr : z.absmax2.data();
    z.q.code2 = z.code2.empty() ? nullptr : z.code2.data();
    if (engine_quantize(w.data(), ENGINE_DTYPE_F32, &z.q) != ENGINE_OK) z.q.format = -1;
    return z;
}

// W[n, k] from the definition of the format.
inline float value(const Quantized& z, int64_t n, int64_t k)
{
    const int64_t i = n * z.q.cols + k, b = i / 64;
    float scale;
    if (z.q.format == ENGINE_QUANT_NF4_DQ)
    {
        const float a = z.code2[z.qabsmax[b]] * z.absmax2[b / 256];
        scale = a + z.q.offset;
    }
    else
        scale = z.absmax[b];
    if (z.q.format == ENGINE_QUANT_INT8) return static_cast<float>(static_cast<int8_t>(z.data[i])) * scale;
    const uint8_t byte = z.data[i / 2];
    return kNf4[i % 2 == 0 ? byte >> 4 : byte & 15] * scale;
}

// Weights ~ N(0, 1/sqrt(max(rows, cols))) with an all-zero block and two outliers, so outputs are O(1) both ways.
inline std::vector<float> weights(int64_t rows, int64_t cols, uint32_t seed)
{
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(std::max(rows, cols))));
    std::vector<float> w(rows * cols);
    for (auto& v : w) v = normal(rng);
    for (int64_t i = 0; i < std::min<int64_t>(64, rows * cols); ++i) w[i] = 0.0f; // an all-zero first block
    if (rows * cols > 200) w[150] = 0.9f, w[199] = -1.3f;
    return w;
}

inline std::vector<float> activations(int64_t count, uint32_t seed, bool bf16)
{
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    std::vector<float> x(count);
    for (auto& v : x) v = bf16 ? reference::from_bf16(reference::to_bf16(unit(rng))) : unit(rng);
    return x;
}

// Dequantize-then-matmul in double: forward y[i, n] = sum_k x[i, k] W[n, k]; input gradient dx[i, k] =
// sum_n dy[i, n] W[n, k]. With bf16 activations the weight is rounded to bf16 first. abs_sum receives
// sum |a b| per output (the scale of the rounding error of an fp32 sum).
inline std::vector<double> matmul(const Quantized& z, const std::vector<float>& a, int64_t m, bool input_gradient, bool bf16,
                                  std::vector<double>* abs_sum = nullptr)
{
    const int64_t rows = z.q.rows, cols = z.q.cols;
    const int64_t red = input_gradient ? rows : cols, out = input_gradient ? cols : rows;
    std::vector<float> w(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
        for (int64_t k = 0; k < cols; ++k)
        {
            const float v = value(z, n, k);
            w[n * cols + k] = bf16 ? reference::from_bf16(reference::to_bf16(v)) : v;
        }
    std::vector<double> c(m * out, 0.0);
    if (abs_sum) abs_sum->assign(m * out, 0.0);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < out; ++j)
        {
            double s = 0.0, s_abs = 0.0;
            for (int64_t r = 0; r < red; ++r)
            {
                const double t = static_cast<double>(a[i * red + r]) * (input_gradient ? w[r * cols + j] : w[j * cols + r]);
                s += t;
                s_abs += std::fabs(t);
            }
            c[i * out + j] = s;
            if (abs_sum) (*abs_sum)[i * out + j] = s_abs;
        }
    return c;
}

struct Shape
{
    int64_t m, rows, cols;
};

// Shapes: single row/column, tails of every tile (12 rows, 32 columns), runs that straddle blocks and rows
// (cols not a multiple of 64, odd sizes), and reductions longer than one panel (2048 fp32, 4096 bf16 pairs).
inline std::vector<Shape> shapes(bool large)
{
    std::vector<Shape> s = {{1, 1, 64}, {5, 33, 64}, {13, 70, 192}, {3, 40, 100}, {4, 3, 7}, {25, 65, 130}, {12, 32, 256}};
    if (large)
    {
        s.push_back({7, 40, 4200});
        s.push_back({5, 4200, 40});
    }
    return s;
}

} // namespace qref
