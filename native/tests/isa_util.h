// The instruction sets the CPU tests run each kernel under: every one this machine supports (engine_force_isa says).
#pragma once
#include "engine_native.h"

#include <cstdint>
#include <vector>

namespace isa_util {

inline std::vector<int32_t> available_isas()
{
    std::vector<int32_t> isas;
    for (int32_t isa : {ENGINE_ISA_SCALAR, ENGINE_ISA_AVX2, ENGINE_ISA_AVX512})
        if (engine_force_isa(isa) == ENGINE_OK) isas.push_back(isa);
    engine_force_isa(-1);
    return isas;
}

inline const char* isa_name(int32_t isa)
{
    return isa == ENGINE_ISA_AVX512 ? "avx512" : isa == ENGINE_ISA_AVX2 ? "avx2" : "scalar";
}

} // namespace isa_util
