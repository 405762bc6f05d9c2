// The avx2 build of the row kernels (compiler flags for this file are set in CMake: cmake/EngineSimd.cmake).
#include "simd_avx2.h"
#include "logprob_rows.h"
#include "fused_rows.h"

const EngineRowKernels* engine_row_kernels_avx2() { return make_row_kernels<SimdAvx2>(); }
const EngineFusedKernels* engine_fused_kernels_avx2() { return make_fused_kernels<SimdAvx2>(); }
