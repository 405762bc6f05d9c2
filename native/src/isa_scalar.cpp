// The scalar build of the row kernels (compiler flags for this file are set in CMake: cmake/EngineSimd.cmake).
#include "simd_scalar.h"
#include "logprob_rows.h"
#include "fused_rows.h"

const EngineRowKernels* engine_row_kernels_scalar() { return make_row_kernels<SimdScalar>(); }
const EngineFusedKernels* engine_fused_kernels_scalar() { return make_fused_kernels<SimdScalar>(); }
