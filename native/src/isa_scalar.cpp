// The scalar build of the row kernels and of the dequantizing matmul (compiler flags for this file are set in CMake: cmake/EngineSimd.cmake).
#include "simd_scalar.h"
#include "logprob_rows.h"
#include "fused_rows.h"

const EngineRowKernels* engine_row_kernels_scalar() { return make_row_kernels<SimdScalar>(); }

#include "qmatmul.h"

void engine_qmatmul_scalar(const QmmProblem& p) { qmatmul_simd<SimdScalar>(p); }
const EngineFusedKernels* engine_fused_kernels_scalar() { return make_fused_kernels<SimdScalar>(); }

#include "adamw_rows.h"

const EngineAdamWKernels* engine_adamw_kernels_scalar() { return make_adamw_kernels<SimdScalar>(); }
