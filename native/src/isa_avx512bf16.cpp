// The fused layer kernels with AVX512-BF16 output conversions (simd_avx512bf16.h); flags in CMakeLists.txt.
#include "simd_avx512bf16.h"
#include "fused_rows.h"

const EngineFusedKernels* engine_fused_kernels_avx512bf16() { return make_fused_kernels<SimdAvx512Bf16>(); }
