// The per-ISA kernels of the multi-tensor AdamW (native/src/adamw.cpp drives them): one table per ISA, filled by
// isa_*.cpp from adamw_rows.h, function pointers only (as row_kernels.h, so no code compiled for one ISA can be
// merged into another).
#pragma once
#include "engine_native.h"
#include <stdint.h>

struct EngineAdamWKernels
{
    // Elements [begin, end) of one tensor: the AdamW update (floor = false), or the floor: the same loads and
    // stores with one add per array instead of the update's arithmetic (the memory-bandwidth bound).
    void (*update)(const EngineAdamWTensor* t, int64_t begin, int64_t end, const EngineAdamWHyper* h, bool floor);
    // Sum of squares of grad[begin, end) (f32 lanes, summed into a double at the end of the range).
    double (*sum_squares)(const void* grad, int32_t dtype, int64_t begin, int64_t end);
};

const EngineAdamWKernels* engine_adamw_kernels_scalar();
const EngineAdamWKernels* engine_adamw_kernels_avx2();
const EngineAdamWKernels* engine_adamw_kernels_avx512();
