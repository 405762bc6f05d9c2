// The avx2 build of the row kernels (compiler flags for this file are set in CMake: cmake/EngineSimd.cmake).
#include "simd_avx2.h"
#include "logprob_rows.h"
#include "adamw_rows.h"

const EngineRowKernels* engine_row_kernels_avx2() { return make_row_kernels<SimdAvx2>(); }
const EngineAdamWKernels* engine_adamw_kernels_avx2() { return make_adamw_kernels<SimdAvx2>(); }
