// The dequantizing matmul C [m, j] = A [m, r] . B [r, j], where B is a view of a quantized weight (quant_format.h):
// the forward (x . W^T) and the input gradient (dy . W). Written once over a kernel policy: the CPU loop below
// (blocks of 32 output columns spread over the worker pool; per block, panels of B dequantized once and swept by
// a register-blocked micro-kernel over every row of A; fp32 accumulators kept in a per-block tile) and, per ISA,
// the panel format and micro-kernel. Included by each ISA translation unit inside its anonymous namespace.
#pragma once
#include "quant_format.h"
#include "thread_pool.h"

#include <algorithm>
#include <array>
#include <cstring>

// The problem as the ISA code sees it (qmatmul.cpp fills it in).
struct QmmProblem
{
    const void* a;   // [m, r], f32 or bf16 (a_dtype)
    int32_t a_dtype;
    int64_t m, r, j; // rows of A, the reduced dimension, output columns
    const EngineQuantWeight* w;
    bool input_gradient; // B[r, j] = W[r, j] (dy . W) rather than W[j, r] (x . W^T)
    void* c;             // [m, j], f32 or bf16 (c_dtype)
    int32_t c_dtype;
};

namespace {

constexpr int64_t kCols = engine::quant::kPanelCols;

inline float a_to_float(float v) { return v; }
inline float a_to_float(uint16_t v)
{
    const uint32_t bits = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// Runs the whole problem with Policy's panels and micro-kernel. A is first repacked once per call into blocks of
// Mr rows, interleaved so the micro-kernel reads it sequentially (rows of A lie a power of two apart in memory
// and would all fall in the same L1 set); rows past m are zeros, computed and dropped.
template <class Policy>
void qmatmul_run(const QmmProblem& p)
{
    using Panel = typename Policy::PanelT;
    using APack = typename Policy::APackT;
    constexpr int Mr = Policy::Mr;
    const int64_t mblocks = (p.m + Mr - 1) / Mr;
    const int64_t a_block = Policy::a_elements(p.r);
    // Buffers come from quant.cpp: no std::vector code compiled with this file's ISA flags (see row_kernels.h).
    APack* apack = static_cast<APack*>(engine::quant::thread_scratch(2, mblocks * a_block * static_cast<int64_t>(sizeof(APack))));
    engine::parallel_for(0, mblocks, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) Policy::pack_a(p, b * Mr, std::min<int64_t>(Mr, p.m - b * Mr), apack + b * a_block);
    });
    const int64_t blocks = (p.j + kCols - 1) / kCols;
    engine::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
        Panel* panel = static_cast<Panel*>(engine::quant::thread_scratch(0, Policy::panel_elements(std::min<int64_t>(Policy::Kc, p.r)) * static_cast<int64_t>(sizeof(Panel))));
        float* tile = static_cast<float*>(engine::quant::thread_scratch(1, mblocks * Mr * kCols * static_cast<int64_t>(sizeof(float))));
        for (int64_t b = b0; b < b1; ++b)
        {
            const int64_t j0 = b * kCols, jc = std::min(kCols, p.j - j0);
            for (int64_t r0 = 0; r0 < p.r; r0 += Policy::Kc)
            {
                const int64_t rc = std::min(Policy::Kc, p.r - r0);
                Policy::pack(p, r0, rc, j0, jc, panel);
                for (int64_t mb = 0; mb < mblocks; ++mb)
                    Policy::kernel(apack + mb * a_block + Policy::a_offset(r0), panel, rc, tile + mb * Mr * kCols, r0 > 0);
            }
            for (int64_t i = 0; i < p.m; ++i)
            {
                const float* t = tile + i * kCols;
                if (p.c_dtype == ENGINE_DTYPE_F32)
                    std::memcpy(static_cast<float*>(p.c) + i * p.j + j0, t, static_cast<size_t>(jc) * sizeof(float));
                else
                {
                    uint16_t* out = static_cast<uint16_t*>(p.c) + i * p.j + j0;
                    for (int64_t j = 0; j < jc; ++j) out[j] = engine::quant::to_bf16(t[j]);
                }
            }
        }
    });
    // The repacked A is as large as A (twice for bf16 A on the fp32 path): kept for the next call up to 64 MiB.
    engine::quant::trim_thread_scratch(2, int64_t{64} << 20);
}

// The portable policy over a SIMD abstraction S: fp32 panels (weights rounded to bf16 first for bf16
// activations) and fp32 FMAs, MR rows x 32 columns of accumulators.
template <class S, int MR>
struct SimdPolicy
{
    using PanelT = float;
    using APackT = float;
    static constexpr int64_t Kc = 2048; // 256 KiB of panel: stays in L2 while every row of A streams past
    static constexpr int Mr = MR;
    static int64_t panel_elements(int64_t rc) { return rc * kCols; }
    static int64_t a_elements(int64_t r) { return r * MR; }
    static int64_t a_offset(int64_t r0) { return r0 * MR; }

    static void pack_a(const QmmProblem& p, int64_t m0, int64_t rows, float* dst)
    {
        for (int i = 0; i < MR; ++i)
        {
            if (i >= rows)
            {
                for (int64_t r = 0; r < p.r; ++r) dst[r * MR + i] = 0.0f;
            }
            else if (p.a_dtype == ENGINE_DTYPE_F32)
            {
                const float* a = static_cast<const float*>(p.a) + (m0 + i) * p.r;
                for (int64_t r = 0; r < p.r; ++r) dst[r * MR + i] = a[r];
            }
            else
            {
                const uint16_t* a = static_cast<const uint16_t*>(p.a) + (m0 + i) * p.r;
                for (int64_t r = 0; r < p.r; ++r) dst[r * MR + i] = a_to_float(a[r]);
            }
        }
    }

    static void pack(const QmmProblem& p, int64_t r0, int64_t rc, int64_t j0, int64_t jc, float* dst)
    {
        engine::quant::pack_panel_f32(*p.w, p.input_gradient, p.a_dtype == ENGINE_DTYPE_BF16, r0, rc, j0, jc, dst);
    }

    static void kernel(const float* a, const float* panel, int64_t rc, float* c, bool accumulate)
    {
        using V = typename S::V;
        constexpr int W = S::Width, NV = static_cast<int>(kCols) / W;
        V acc[MR][NV];
        for (int i = 0; i < MR; ++i)
            for (int v = 0; v < NV; ++v) acc[i][v] = accumulate ? S::load(c + i * kCols + v * W) : S::zero();
        for (int64_t r = 0; r < rc; ++r)
        {
            V bv[NV];
            for (int v = 0; v < NV; ++v) bv[v] = S::load(panel + r * kCols + v * W);
            for (int i = 0; i < MR; ++i)
            {
                const V ai = S::set1(a[r * MR + i]);
                for (int v = 0; v < NV; ++v) acc[i][v] = S::fma(ai, bv[v], acc[i][v]);
            }
        }
        for (int i = 0; i < MR; ++i)
            for (int v = 0; v < NV; ++v) S::store(c + i * kCols + v * W, acc[i][v]);
    }
};

// Rows per micro-kernel call: 12 x 2 zmm accumulators (AVX-512), 3 x 4 ymm (AVX2, 16 registers), 4 (scalar).
template <class S>
constexpr int micro_rows() { return S::Width == 16 ? 12 : S::Width == 8 ? 3 : 4; }

template <class S>
void qmatmul_simd(const QmmProblem& p) { qmatmul_run<SimdPolicy<S, micro_rows<S>()>>(p); }

} // namespace

void engine_qmatmul_scalar(const QmmProblem& p);
void engine_qmatmul_avx2(const QmmProblem& p);
void engine_qmatmul_avx512(const QmmProblem& p);
// AVX-512 with the BF16 dot product (vdpbf16ps): bf16 activations only.
void engine_qmatmul_avx512bf16(const QmmProblem& p);
