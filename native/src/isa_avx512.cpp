// The avx512 build of the row kernels and of the dequantizing matmul (compiler flags for this file are set in CMake: cmake/EngineSimd.cmake).
#include "simd_avx512.h"
#include "logprob_rows.h"
#include "fused_rows.h"

const EngineRowKernels* engine_row_kernels_avx512() { return make_row_kernels<SimdAvx512>(); }

#include "qmatmul.h"

void engine_qmatmul_avx512(const QmmProblem& p) { qmatmul_simd<SimdAvx512>(p); }
const EngineFusedKernels* engine_fused_kernels_avx512() { return make_fused_kernels<SimdAvx512>(); }

#include "adamw_rows.h"

const EngineAdamWKernels* engine_adamw_kernels_avx512() { return make_adamw_kernels<SimdAvx512>(); }
