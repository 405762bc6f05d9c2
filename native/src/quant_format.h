// The quantized-weight formats of engine_native.h: code books, block scales and the dequantization of a run of
// one weight row, shared by engine_dequantize and the packers of the dequantizing matmul (quant.cpp). Compiled
// without ISA flags and with -ffp-contract=off (CMakeLists.txt): every path computes value = code * scale with
// the same two fp32 roundings, so dequantize and the matmul see identical weights.
#pragma once
#include "engine_native.h"
#include <stdint.h>

namespace engine::quant {

extern const float kNf4Code[16];

// The fp32 scale of block b (absmax for NF4, absmax/127 for INT8), for any format.
inline float block_scale(const EngineQuantWeight& q, int64_t b)
{
    if (q.format == ENGINE_QUANT_NF4_DQ)
    {
        const float a = q.code2[q.qabsmax[b]] * q.absmax2[b / ENGINE_QUANT_DQ_GROUP];
        return a + q.offset;
    }
    return q.absmax[b];
}

// out[i] = W[row, k0 + i] for i < len, in fp32.
void dequantize_run(const EngineQuantWeight& q, int64_t row, int64_t k0, int64_t len, float* out);
// The same rounded to bf16 (nearest even).
void dequantize_run_bf16(const EngineQuantWeight& q, int64_t row, int64_t k0, int64_t len, uint16_t* out);

// Checks the format, the shape and the buffers a format needs; false when one is wrong.
bool valid(const EngineQuantWeight* q);

uint16_t to_bf16(float v);

// Panels of the dequantizing matmul (native/src/qmatmul.h): B[r, j] for r in [r0, r0 + rc), j in [j0, j0 + jc),
// where B[r, j] = W[j, r] for the forward (x . W^T) and W[r, j] for the input gradient (dy . W, input_gradient). Columns
// jc <= j < kPanelCols are zero.
constexpr int64_t kPanelCols = 32;
// fp32: dst[r * 32 + j]; values rounded to bf16 first when round_bf16.
void pack_panel_f32(const EngineQuantWeight& q, bool input_gradient, bool round_bf16, int64_t r0, int64_t rc, int64_t j0, int64_t jc,
                    float* dst);
// bf16 pairs for dot-product instructions: dst[(r / 2) * 32 + j] = bf16(B[r, j]) | bf16(B[r + 1, j]) << 16, rc even.
void pack_panel_bf16_pairs(const EngineQuantWeight& q, bool input_gradient, int64_t r0, int64_t rc, int64_t j0, int64_t jc, uint32_t* dst);

// A buffer of at least `bytes` bytes owned by the calling thread (slot 0..3), kept between calls.
void* thread_scratch(int slot, int64_t bytes);
// Frees the calling thread's buffer of `slot` when it is larger than keep_bytes.
void trim_thread_scratch(int slot, int64_t keep_bytes);

} // namespace engine::quant
