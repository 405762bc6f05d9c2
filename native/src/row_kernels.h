// The per-ISA row kernels: each ISA translation unit fills one table. Plain function pointers only, so no
// inline code compiled for one ISA can be merged into (and executed from) another.
#pragma once
#include <stdint.h>

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

const EngineRowKernels* engine_row_kernels_scalar();
const EngineRowKernels* engine_row_kernels_avx2();
const EngineRowKernels* engine_row_kernels_avx512();
