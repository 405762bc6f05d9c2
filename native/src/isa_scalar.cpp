// The scalar build of the row kernels (compiler flags for this file are set in CMake: cmake/EngineSimd.cmake).
#include "simd_scalar.h"
#include "logprob_rows.h"

const EngineRowKernels* engine_row_kernels_scalar() { return make_row_kernels<SimdScalar>(); }
