// The scalar build of the row kernels (compiler flags for this file are set in CMake: cmake/EngineSimd.cmake).
#include "simd_scalar.h"
#include "logprob_rows.h"
#include "adamw_rows.h"

const EngineRowKernels* engine_row_kernels_scalar() { return make_row_kernels<SimdScalar>(); }
const EngineAdamWKernels* engine_adamw_kernels_scalar() { return make_adamw_kernels<SimdScalar>(); }
