// The avx2 build of the row kernels and of the dequantizing matmul (compiler flags for this file are set in CMake: cmake/EngineSimd.cmake).
#include "simd_avx2.h"
#include "logprob_rows.h"
#include "fused_rows.h"

const EngineRowKernels* engine_row_kernels_avx2() { return make_row_kernels<SimdAvx2>(); }

#include "qmatmul.h"

void engine_qmatmul_avx2(const QmmProblem& p) { qmatmul_simd<SimdAvx2>(p); }
const EngineFusedKernels* engine_fused_kernels_avx2() { return make_fused_kernels<SimdAvx2>(); }

#include "adamw_rows.h"

const EngineAdamWKernels* engine_adamw_kernels_avx2() { return make_adamw_kernels<SimdAvx2>(); }
