// The avx512 build of the row kernels (compiler flags for this file are set in CMake: cmake/EngineSimd.cmake).
#include "simd_avx512.h"
#include "logprob_rows.h"
#include "fused_rows.h"

const EngineRowKernels* engine_row_kernels_avx512() { return make_row_kernels<SimdAvx512>(); }
const EngineFusedKernels* engine_fused_kernels_avx512() { return make_fused_kernels<SimdAvx512>(); }
