// The per-ISA row kernels: each ISA translation unit fills one table. Plain function pointers only, so no
// inline code compiled for one ISA can be merged into (and executed from) another.
#pragma once
#include <stdint.h>
#include "engine_native.h"

struct EngineRowKernels
{
    // Rows [row_begin, row_end) of the forward; returns the first row whose label is out of range, or -1.
    int64_t (*forward_f32)(const float* logits, const int64_t* labels, int64_t row_begin, int64_t row_end, int64_t vocab,
                           int64_t ignore_index, float* logp, float* stats, float* logit_mean);
    int64_t (*forward_bf16)(const uint16_t* logits, const int64_t* labels, int64_t row_begin, int64_t row_end, int64_t vocab,
                            int64_t ignore_index, float* logp, float* stats, float* logit_mean);
    void (*backward_f32)(const float* logits, const int64_t* labels, const float* stats, const float* grad_out,
                         int64_t row_begin, int64_t row_end, int64_t vocab, int64_t ignore_index, float* grad);
    void (*backward_bf16)(const uint16_t* logits, const int64_t* labels, const float* stats, const float* grad_out,
                          int64_t row_begin, int64_t row_end, int64_t vocab, int64_t ignore_index, uint16_t* grad);
    void (*floor_f32)(const float* logits, int64_t row_begin, int64_t row_end, int64_t vocab, float* out);
    void (*floor_bf16)(const uint16_t* logits, int64_t row_begin, int64_t row_end, int64_t vocab, float* out);
};

// Fused RMSNorm / RoPE / gated activations (fused_rows.h), same per-ISA arrangement. Ranges are rows for the
// norm, tokens for RoPE, elements for the activations; index [0] of the activations is SwiGLU, [1] GeGLU.
struct EngineFusedKernels
{
    void (*rmsnorm_forward_f32)(const float* x, const float* w, int64_t row_begin, int64_t row_end, int64_t n, float eps,
                                int32_t mode, float* y, float* inv_rms, int32_t stream);
    void (*rmsnorm_forward_bf16)(const uint16_t* x, const uint16_t* w, int64_t row_begin, int64_t row_end, int64_t n, float eps,
                                 int32_t mode, uint16_t* y, float* inv_rms, int32_t stream);
    void (*rmsnorm_backward_f32)(const float* x, const float* w, const float* inv_rms, const float* dy, int64_t row_begin,
                                 int64_t row_end, int64_t n, int32_t mode, float* dx, float* dw_acc, int32_t stream);
    void (*rmsnorm_backward_bf16)(const uint16_t* x, const uint16_t* w, const float* inv_rms, const uint16_t* dy,
                                  int64_t row_begin, int64_t row_end, int64_t n, int32_t mode, uint16_t* dx, float* dw_acc, int32_t stream);
    void (*rope_f32)(const float* src, int64_t sb, int64_t st, int64_t sh, float* dst, const float* cos, const float* sin,
                     int64_t token_begin, int64_t token_end, int64_t seq, int64_t heads, int64_t head_dim, int32_t inverse, int32_t stream);
    void (*rope_bf16)(const uint16_t* src, int64_t sb, int64_t st, int64_t sh, uint16_t* dst, const float* cos, const float* sin,
                      int64_t token_begin, int64_t token_end, int64_t seq, int64_t heads, int64_t head_dim, int32_t inverse, int32_t stream);
    void (*glu_forward_f32[2])(const float* g, const float* u, int64_t begin, int64_t end, float* h, int32_t stream);
    void (*glu_forward_bf16[2])(const uint16_t* g, const uint16_t* u, int64_t begin, int64_t end, uint16_t* h, int32_t stream);
    void (*glu_backward_f32[2])(const float* g, const float* u, const float* dh, int64_t begin, int64_t end, float* dg, float* du, int32_t stream);
    void (*glu_backward_bf16[2])(const uint16_t* g, const uint16_t* u, const uint16_t* dh, int64_t begin, int64_t end,
                                 uint16_t* dg, uint16_t* du, int32_t stream);
};

const EngineRowKernels* engine_row_kernels_scalar();
const EngineRowKernels* engine_row_kernels_avx2();
const EngineRowKernels* engine_row_kernels_avx512();
const EngineFusedKernels* engine_fused_kernels_scalar();
const EngineFusedKernels* engine_fused_kernels_avx2();
const EngineFusedKernels* engine_fused_kernels_avx512();
const EngineFusedKernels* engine_fused_kernels_avx512bf16(); // AVX512-BF16 output conversions (isa_avx512bf16.cpp)
